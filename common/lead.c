/* lead.c - from a raw submission to the canonical lead.
 *
 * Every field goes through its normalizer (normalize.c); every broken rule is
 * collected, not just the first, so a form can show all its errors at once. The
 * rules for what is required are deliberately few: a lead needs a way to reach the
 * person (a phone or an e-mail); everything else is optional but, when present,
 * must be valid. */
#include "lf/lead.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lf/company.h"
#include "lf/normalize.h"
#include "lf/phone.h"
#include "lf/util.h"

const char *const lf_lead_channels[] = {"web_form", "phone",    "trade_show", "partner",
                                        "api",      "referral", NULL};

int lf_lead_channel_valid(const char *s) {
    for (const char *const *c = lf_lead_channels; *c; c++)
        if (strcmp(*c, s) == 0)
            return 1;
    return 0;
}

/* Channels that keep a phone number libphonenumber parses but does not validate, one bit
   per entry of lf_lead_channels. Set once at start (lf_lead_keep_unverified_phones). */
static unsigned s_keep_unverified;

static int s_channel_index(const char *s, size_t len) {
    for (int i = 0; lf_lead_channels[i]; i++)
        if (strlen(lf_lead_channels[i]) == len &&
            strncmp(lf_lead_channels[i], s, len) == 0)
            return i;
    return -1;
}

int lf_lead_keep_unverified_phones(const char *channels) {
    unsigned mask = 0;
    const char *p = channels ? channels : "";
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *w = p;
        while (len > 0 && *w == ' ')
            w++, len--;
        while (len > 0 && w[len - 1] == ' ')
            len--;
        if (len > 0) {
            int i = s_channel_index(w, len);
            if (i < 0)
                return -1;
            mask |= 1u << i;
        }
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    s_keep_unverified = mask;
    return 0;
}

static int s_keeps_unverified(const char *channel) {
    int i = channel ? s_channel_index(channel, strlen(channel)) : -1;
    return i >= 0 && (s_keep_unverified >> i) & 1u;
}

void lf_field_error(json_t *errors, const char *field, const char *code,
                    const char *message) {
    json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "field", field, "code",
                                            code, "message", message));
}

/* Text fields and their limits in characters. */
typedef struct {
    const char *field;
    size_t max_chars;
    int kind; /* 0 text, 1 name */
} s_text_field_t;

static const s_text_field_t s_text_fields[] = {
    {"source", 100, 0}, {"name", 100, 1},     {"company", 200, 1},     {"need", 2000, 0},
    {"region", 100, 0}, {"industry", 100, 0}, {"external_id", 200, 0}, {NULL, 0, 0}};

/* phone_type, phone_country, flags and company_key are computed, never taken from the
   client: a submission that sends them keeps them under "extra" like any unknown field.
 */
static const char *const s_known[] = {
    "channel",  "source",      "name",     "company", "email",          "phone",
    "need",     "budget",      "currency", "urgency", "decision_maker", "region",
    "industry", "external_id", "extra",    NULL};

static int s_is_known(const char *k) {
    for (const char *const *p = s_known; *p; p++)
        if (strcmp(*p, k) == 0)
            return 1;
    return 0;
}

/* Gets a field as text. Numbers are accepted for fields where a spreadsheet or a
 * phone system naturally sends one (phone, budget, external_id). Returns NULL when
 * absent or null; sets *bad when the JSON type is wrong. */
static const char *s_text(const json_t *in, const char *field, char *buf, size_t bufsz,
                          int *bad) {
    /* Only these fields may arrive as JSON numbers. */
    int numeric_ok = !strcmp(field, "phone") || !strcmp(field, "external_id") ||
                     !strcmp(field, "decision_maker");
    const json_t *v = json_object_get(in, field);
    *bad = 0;
    if (!v || json_is_null(v))
        return NULL;
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v) && numeric_ok) {
        snprintf(buf, bufsz, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    *bad = 1;
    return NULL;
}

static void s_type_error(json_t *errors, const char *field) {
    lf_field_error(errors, field, "type", "must be a string");
}

json_t *lf_lead_canonical(const json_t *in, const char *default_channel,
                          const char *forced_channel, json_t *errors) {
    size_t errors_before = json_array_size(errors);
    json_t *lead = json_object();
    char buf[16384], num[64];
    const char *why = NULL;
    int bad;

    /* channel */
    const char *ch = s_text(in, "channel", num, sizeof num, &bad);
    if (bad) {
        s_type_error(errors, "channel");
    } else {
        if (!ch || !*ch)
            ch = default_channel ? default_channel : "api";
        if (!lf_lead_channel_valid(ch))
            lf_field_error(errors, "channel", "invalid",
                           "must be one of web_form, phone, trade_show, partner, api, "
                           "referral");
        else if (forced_channel && strcmp(ch, forced_channel) != 0)
            lf_field_error(errors, "channel", "forbidden",
                           "this key may only create leads of its own channel");
        else
            json_object_set_new(lead, "channel", json_string(ch));
    }

    /* plain text fields */
    for (const s_text_field_t *f = s_text_fields; f->field; f++) {
        const char *v = s_text(in, f->field, num, sizeof num, &bad);
        if (bad) {
            s_type_error(errors, f->field);
            continue;
        }
        if (!v) {
            json_object_set_new(lead, f->field, json_null());
            continue;
        }
        int rc = f->kind ? lf_norm_name(v, buf, sizeof buf, &why)
                         : lf_norm_text(v, buf, sizeof buf, &why);
        if (rc < 0) {
            lf_field_error(errors, f->field, "invalid", why ? why : "invalid text");
        } else if (rc == 1) {
            json_object_set_new(lead, f->field, json_null());
        } else if (lf_utf8_chars(buf) > f->max_chars) {
            char msg[96];
            snprintf(msg, sizeof msg, "must be at most %zu characters", f->max_chars);
            lf_field_error(errors, f->field, "too_long", msg);
        } else {
            json_object_set_new(lead, f->field, json_string(buf));
        }
    }

    /* The company key: what known-customer matching and sticky owners compare (the
       company as typed is kept in "company"). A name the key rules cannot handle gets no
       key rather than an error: the lead itself is fine. */
    const char *company = json_string_value(json_object_get(lead, "company"));
    char key[LF_COMPANY_KEY_SIZE];
    json_object_set_new(lead, "company_key",
                        company && lf_company_key(company, key, sizeof key, NULL) == 0
                            ? json_string(key)
                            : json_null());

    /* e-mail and phone: at least one of them */
    int have_contact = 0;
    const char *email = s_text(in, "email", num, sizeof num, &bad);
    if (bad) {
        s_type_error(errors, "email");
    } else if (email) {
        int rc = lf_norm_email(email, buf, sizeof buf, &why);
        if (rc < 0)
            lf_field_error(errors, "email", "invalid",
                           why ? why : "not a valid e-mail address");
        else if (rc == 0) {
            json_object_set_new(lead, "email", json_string(buf));
            have_contact = 1;
        }
    }
    if (!json_object_get(lead, "email"))
        json_object_set_new(lead, "email", json_null());
    /* phone: libphonenumber's verdict. A number that parses but is not valid is an error,
       unless the lead's channel is configured to keep it with the flag phone_unverified.
     */
    json_t *flags = json_array();
    const char *phone = s_text(in, "phone", num, sizeof num, &bad);
    if (bad) {
        s_type_error(errors, "phone");
    } else if (phone) {
        lf_phone_t ph;
        int rc = lf_phone_parse(phone, NULL, &ph, &why);
        const char *channel = json_string_value(json_object_get(lead, "channel"));
        if (rc == -2 && s_keeps_unverified(channel)) {
            json_object_set_new(lead, "phone", json_string(ph.e164));
            json_object_set_new(lead, "phone_type", json_string("unknown"));
            json_object_set_new(lead, "phone_country", json_null());
            json_array_append_new(flags, json_string("phone_unverified"));
            have_contact = 1;
        } else if (rc < 0) {
            lf_field_error(errors, "phone", "invalid",
                           why ? why : "not a valid phone number");
        } else if (rc == 0) {
            json_object_set_new(lead, "phone", json_string(ph.e164));
            json_object_set_new(lead, "phone_type", json_string(ph.type));
            json_object_set_new(lead, "phone_country",
                                ph.country[0] ? json_string(ph.country) : json_null());
            have_contact = 1;
        }
    }
    if (!json_object_get(lead, "phone"))
        json_object_set_new(lead, "phone", json_null());
    if (!json_object_get(lead, "phone_type"))
        json_object_set_new(lead, "phone_type", json_null());
    if (!json_object_get(lead, "phone_country"))
        json_object_set_new(lead, "phone_country", json_null());
    json_object_set_new(lead, "flags", flags);
    /* Report "required" only when neither field already has an error of its own. */
    int contact_errors = 0;
    for (size_t i = errors_before; i < json_array_size(errors); i++) {
        const char *f =
            json_string_value(json_object_get(json_array_get(errors, i), "field"));
        contact_errors += f && (!strcmp(f, "phone") || !strcmp(f, "email"));
    }
    if (!have_contact && !contact_errors)
        lf_field_error(errors, "phone", "required",
                       "a lead needs a phone number or an e-mail");

    /* currency, then budget (which may carry its own currency) */
    const char *cur = s_text(in, "currency", num, sizeof num, &bad);
    char currency[8] = "CNY";
    if (bad) {
        s_type_error(errors, "currency");
    } else if (cur && *cur) {
        size_t n = strlen(cur);
        int ok = n == 3;
        for (size_t i = 0; ok && i < 3; i++)
            ok = (cur[i] >= 'A' && cur[i] <= 'Z') || (cur[i] >= 'a' && cur[i] <= 'z');
        if (!ok) {
            lf_field_error(errors, "currency", "invalid",
                           "must be an ISO 4217 code such as CNY");
        } else {
            for (size_t i = 0; i < 3; i++)
                currency[i] = (char)(cur[i] & ~0x20);
            currency[3] = '\0';
        }
    }
    const json_t *bv = json_object_get(in, "budget");
    json_t *budget = json_null();
    if (bv && !json_is_null(bv)) {
        lf_budget_t b;
        int rc;
        char raw[256];
        if (json_is_number(bv)) {
            double d = json_number_value(bv);
            snprintf(raw, sizeof raw, "%.15g", d);
            rc = lf_norm_budget_number(d, currency, &b);
            why = "must be a positive amount";
        } else if (json_is_string(bv)) {
            lf_strlcpy(raw, json_string_value(bv), sizeof raw);
            rc = lf_norm_budget(json_string_value(bv), currency, &b, &why);
        } else {
            rc = -2;
        }
        if (rc == -2) {
            lf_field_error(errors, "budget", "type",
                           "must be a number or text such as 50万");
        } else if (rc < 0) {
            lf_field_error(errors, "budget", "invalid", why ? why : "not a valid amount");
        } else if (rc == 0) {
            json_decref(budget);
            budget = json_pack("{s:o, s:o, s:s, s:s}", "min",
                               b.has_min ? json_real(b.min) : json_null(), "max",
                               b.has_max ? json_real(b.max) : json_null(), "currency",
                               b.currency, "raw", raw);
        } else {
            /* Not a number (待定): the raw text is kept for audit, the budget is null. */
            json_object_set_new(lead, "budget_raw", json_string(raw));
        }
    }
    json_object_set_new(lead, "budget", budget);
    json_object_set_new(lead, "currency", json_string(currency));

    /* urgency */
    const json_t *uv = json_object_get(in, "urgency");
    if (uv && !json_is_null(uv)) {
        const char *u = NULL;
        if (!json_is_string(uv)) {
            s_type_error(errors, "urgency");
        } else {
            int rc = lf_norm_urgency(json_string_value(uv), &u, &why);
            if (rc < 0)
                lf_field_error(errors, "urgency", "invalid",
                               "must be high, medium or low (高/中/低)");
            json_object_set_new(lead, "urgency", rc == 0 ? json_string(u) : json_null());
        }
    } else {
        json_object_set_new(lead, "urgency", json_null());
    }

    /* decision_maker */
    const json_t *dv = json_object_get(in, "decision_maker");
    if (dv && !json_is_null(dv)) {
        if (json_is_boolean(dv)) {
            json_object_set_new(lead, "decision_maker", json_boolean(json_is_true(dv)));
        } else if (json_is_string(dv) || json_is_integer(dv)) {
            const char *s = s_text(in, "decision_maker", num, sizeof num, &bad);
            int b = 0;
            int rc = lf_norm_bool(s, &b, &why);
            if (rc < 0)
                lf_field_error(errors, "decision_maker", "invalid",
                               "must be true or false (是/否)");
            json_object_set_new(lead, "decision_maker",
                                rc == 0 ? json_boolean(b) : json_null());
        } else {
            lf_field_error(errors, "decision_maker", "type", "must be true or false");
        }
    } else {
        json_object_set_new(lead, "decision_maker", json_null());
    }

    /* extra: the client's own "extra" object plus every unknown field, never dropped */
    json_t *extra = json_object();
    const json_t *ev = json_object_get(in, "extra");
    if (ev && json_is_object(ev))
        json_object_update(extra, (json_t *)ev);
    else if (ev && !json_is_null(ev))
        lf_field_error(errors, "extra", "type", "must be an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v) {
        if (!s_is_known(k))
            json_object_set(extra, k, v);
    }
    json_object_set_new(lead, "extra", extra);

    if (json_array_size(errors) > errors_before) {
        json_decref(lead);
        return NULL;
    }
    return lead;
}
