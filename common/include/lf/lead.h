/* lead.h - the canonical lead, shared by intake (which builds it) and the router
 * and analytics (which read it back from PostgreSQL).
 *
 * A canonical lead is a JSON object with the field names of the HTTP API
 * (docs/openapi.yaml): channel, source, name, company, email, phone (E.164), phone_type
 * (mobile, fixed_line, toll_free, voip, unknown) and phone_country (ISO 3166, e.g. "CN")
 * or null, flags (a list; "phone_unverified" when a channel keeps a number that is not
 * valid), budget {min,max,currency,raw} or null, company_key (lf_company_key, null
 * without a company; for matching known customers, never shown as the company), urgency,
 * decision_maker, region, industry, need, external_id, extra. */
#ifndef LF_LEAD_H
#define LF_LEAD_H

#include <jansson.h>

/* The channels a lead can come from. */
extern const char *const lf_lead_channels[];
/* 1 when s is one of lf_lead_channels. */
int lf_lead_channel_valid(const char *s);

/* Channels (comma-separated names of lf_lead_channels, "" for none) whose leads keep a
 * phone number that libphonenumber parses but does not validate, with the flag
 * "phone_unverified" and phone_type "unknown", instead of a validation error. Call once
 * at start, before threads run. Returns 0, or -1 for an unknown channel name (nothing
 * changed). */
int lf_lead_keep_unverified_phones(const char *channels);

/* Builds the canonical lead from a client's submission (borrowed, an object whose
 * values may be strings, numbers, booleans or null). default_channel is used when
 * the submission has none (the key's channel); forced_channel, when not NULL, is
 * the only channel allowed (a web-form key).
 * Returns the new canonical lead (caller owns) when every field is valid; returns
 * NULL otherwise and appends one {"field","code","message"} object per broken rule
 * to errors (borrowed array). Unknown fields are kept under "extra". */
json_t *lf_lead_canonical(const json_t *in, const char *default_channel,
                          const char *forced_channel, json_t *errors);

/* Appends a field error to errors (borrowed array). */
void lf_field_error(json_t *errors, const char *field, const char *code,
                    const char *message);

#endif
