/* lf/phonenumber.h - the C face of Google's libphonenumber (Debian libphonenumber-dev,
 * C++), implemented in common/phonenumber.cc.
 *
 * Only this header and its .cc know that the library is C++; everything else in leadflow
 * stays C. The shim takes text that is already cleaned (common/phone.c) and answers with
 * plain C values. No C++ exception crosses it: an exception inside the library is logged
 * and reported as a parse failure (std::bad_alloc aborts, as every out-of-memory does in
 * leadflow).
 *
 * The library's metadata for all regions (about 4 MiB in memory) is loaded on the first
 * call, not at start, so a service that never sees a phone number never pays for it. The
 * first call is thread-safe (the library's own singleton). */
#ifndef LF_PHONENUMBER_H
#define LF_PHONENUMBER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why a parsed number is not a valid one (libphonenumber's ValidationResult, plus
 * LF_PN_NOT_ALLOCATED when the length is possible but no range of the metadata holds
 * it). */
typedef enum {
    LF_PN_VALID = 0,
    LF_PN_INVALID_COUNTRY_CODE,
    LF_PN_TOO_SHORT,
    LF_PN_TOO_LONG,
    LF_PN_INVALID_LENGTH,
    LF_PN_NOT_ALLOCATED,
} lf_pn_reason_t;

typedef struct {
    char e164[20];         /* "+8613800138000"; also set for parsed-but-invalid numbers */
    char type[24];         /* libphonenumber's type name: "MOBILE", "FIXED_LINE",
                              "FIXED_LINE_OR_MOBILE", "TOLL_FREE", "SHARED_COST", "VOIP",
                              "PREMIUM_RATE", "PERSONAL_NUMBER", "PAGER", "UAN",
                              "VOICEMAIL" or "UNKNOWN" */
    char country[4];       /* ISO 3166-1 alpha-2 region of the number ("CN"), "" when
                              the library cannot tell (invalid numbers, "001") */
    int country_code;      /* calling code, 86 */
    int valid;             /* 1 when IsValidNumber */
    lf_pn_reason_t reason; /* LF_PN_VALID when valid */
} lf_pn_result_t;

/* Parses `text` (NUL-terminated UTF-8) as libphonenumber's Parse() does, with `region`
 * (ISO 3166 alpha-2, e.g. "CN") for numbers written without '+'. Returns 0 with `out`
 * filled when the text parses as a phone number (valid or not: see out->valid), -1 when
 * it does not parse at all (not a number, too short to be one, too long, bad country
 * code after '+'), with `out` zeroed. Never throws. */
int lf_pn_parse(const char *text, const char *region, lf_pn_result_t *out);
/* The same with every text through libphonenumber's Parse(), none through lf_pn_parse's
 * shortcut for Chinese mobile numbers: the reference that shortcut is tested against. */
int lf_pn_parse_library(const char *text, const char *region, lf_pn_result_t *out);

/* 1 when `region` is a region libphonenumber has metadata for ("CN", "US", ...). */
int lf_pn_region_supported(const char *region);

/* The libphonenumber version leadflow was built against, e.g. "8.12.57" (static). */
const char *lf_pn_version(void);

#ifdef __cplusplus
}
#endif

#endif
