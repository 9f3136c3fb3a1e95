/* lf/phone.h - phone numbers as libphonenumber sees them, after leadflow's own cleaning.
 *
 * lf_norm_phone (declared in lf/normalize.h with the other field rules) answers "valid or
 * not, and its E.164"; this header gives the whole verdict (type, country, the E.164 of a
 * number that parses but is not valid) for the lead model, which stores `phone_type` and
 * `phone_country` and may keep an unverified number with a flag. */
#ifndef LF_PHONE_H
#define LF_PHONE_H

#include "lf/normalize.h"

typedef struct {
    char e164[LF_E164_SIZE]; /* "+8613800138000", also for a number that is not valid */
    const char *type;        /* "mobile", "fixed_line", "toll_free", "voip" or "unknown"
                                (static; "unknown" for every number that is not valid) */
    char country[3];         /* ISO 3166 alpha-2 ("CN"); "" when not valid, and for a
                                valid non-geographic number (+800, +808, +870,
                                +881, +882, +883, +888, +979: no country) */
    const char *lib_type;    /* libphonenumber's own type name ("SHARED_COST"), static */
} lf_phone_t;

/* The full rule. Cleaning first: the text rule of lf_norm_text (full-width digits and
 * '＋', odd spaces), an extension at the end dropped ("转123", "分机 123", "ext. 123",
 * "x123", "#123"), a "tel:" in front dropped, only digits, one leading '+' and the
 * separators space - . ( ) / allowed. A number written as Excel rounds it ("1.38001E+10")
 * is refused: its digits are lost. Then libphonenumber parses it, with `region` (NULL:
 * the default region, see lf_phone_set_default_region) for numbers without '+', and
 * validates it against its metadata. Returns 0 for a valid number (out filled); 1 when
 * the text is empty; -1 when it is not a phone number at all (out->e164 ""); -2 when it
 * parses but is not a valid number (unallocated prefix, wrong length for its area,
 * unknown country code): out->e164 holds libphonenumber's E.164 for it and out->type is
 * "unknown". On -1 and -2, *why (when not NULL) is a short static English reason without
 * the number in it. */
int lf_phone_parse(const char *in, const char *region, lf_phone_t *out, const char **why);

/* Sets the region used for numbers written without '+' (ISO 3166 alpha-2, e.g. "CN",
 * "HK"). Call once at start, before threads run. Returns 0, or -1 when libphonenumber has
 * no metadata for that region (the default stays). The default is "CN"; only another
 * value is checked against the library, which loads its metadata (about 4 MiB) then. */
int lf_phone_set_default_region(const char *region);

/* The default region ("CN" unless set). Borrowed: valid until the next set. */
const char *lf_phone_default_region(void);

/* The version of libphonenumber leadflow was built with, e.g. "8.12.57+ds-3". */
const char *lf_phone_library_version(void);

#endif
