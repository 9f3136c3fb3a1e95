/* phonenumber.cc - the extern "C" shim over libphonenumber (see lf/phonenumber.h).
 *
 * libphonenumber is the reference for what a phone number is: its metadata says, per
 * country, which prefixes are allocated to mobile networks, which area codes exist and
 * how long their local numbers are. Re-writing those tables by hand is how leadflow came
 * to accept 142... mobiles and 7-digit numbers in 8-digit areas; this file hands the
 * question to the library instead and turns its C++ answers into C values.
 *
 * Nothing here allocates memory the caller must free, and no exception leaves a
 * function: the library does not throw on bad input, but std::string can, and C code
 * above must never see an exception. */
#include "lf/phonenumber.h"

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#ifndef LF_PHONENUMBER_VERSION
#define LF_PHONENUMBER_VERSION "unknown"
#endif

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

namespace {

/* The library logs parse problems to stdout by default, with the input in the message;
   leadflow's logs must never carry a phone number, so it gets a logger that says
   nothing. Installed once, before the first use, on the library's own singleton.
   Loading the metadata parses a serialized collection and copies every region out of it;
   the freed parse buffers would stay in the heap for the life of the service, so they
   are handed back to the system at once (measured: 0.7 MiB less resident memory). */
PhoneNumberUtil *s_util() {
    static PhoneNumberUtil *util = [] {
        PhoneNumberUtil *u = PhoneNumberUtil::GetInstance();
        u->SetLogger(new i18n::phonenumbers::NullLogger());
        malloc_trim(0);
        return u;
    }();
    return util;
}

const char *s_type_name(PhoneNumberUtil::PhoneNumberType t) {
    switch (t) {
    case PhoneNumberUtil::FIXED_LINE:
        return "FIXED_LINE";
    case PhoneNumberUtil::MOBILE:
        return "MOBILE";
    case PhoneNumberUtil::FIXED_LINE_OR_MOBILE:
        return "FIXED_LINE_OR_MOBILE";
    case PhoneNumberUtil::TOLL_FREE:
        return "TOLL_FREE";
    case PhoneNumberUtil::PREMIUM_RATE:
        return "PREMIUM_RATE";
    case PhoneNumberUtil::SHARED_COST:
        return "SHARED_COST";
    case PhoneNumberUtil::VOIP:
        return "VOIP";
    case PhoneNumberUtil::PERSONAL_NUMBER:
        return "PERSONAL_NUMBER";
    case PhoneNumberUtil::PAGER:
        return "PAGER";
    case PhoneNumberUtil::UAN:
        return "UAN";
    case PhoneNumberUtil::VOICEMAIL:
        return "VOICEMAIL";
    default:
        return "UNKNOWN";
    }
}

void s_copy(char *dst, size_t sz, const std::string &src) {
    std::snprintf(dst, sz, "%s", src.c_str());
}

/* The form most leads carry, a Chinese mobile number: eleven digits starting with 13-19
   (not 179), written with region CN, or after "+86"; spaces and hyphens between digits
   allowed.
   For these, Parse() only finds calling code 86 and the eleven digits as the national
   number (no national prefix or carrier code is stripped from such a number, no
   extension, no leading zero), at the cost of a dozen ICU regular expressions: 15% of
   intake's CPU in a perf profile (docs/benchmarks.md). So the PhoneNumber is made here
   and the rest (format, type, region) asked of the library as before. The unit test
   phone::the_mobile_shortcut_gives_parse_s_answers compares the two for every
   six-digit prefix 130000-199999 in both forms; anything else goes to Parse(). */
bool s_cn_mobile(const char *text, const char *region, PhoneNumber *n) {
    const char *p = text;
    int plus = *p == '+';
    if (plus) {
        p++;
        if (p[0] != '8' || p[1] != '6')
            return false;
        p += 2;
    } else if (std::strcmp(region, "CN") != 0) {
        return false;
    }
    google::protobuf::uint64 national = 0;
    int digits = 0;
    bool after_digit = false,
         after_cc = plus; /* one separator between digits, or after +86 */
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if ((digits == 0 && *p != '1') || (digits == 1 && *p < '3') || ++digits > 11)
                return false;
            national = national * 10 + (google::protobuf::uint64)(*p - '0');
            after_digit = true;
            after_cc = false;
        } else if ((*p == ' ' || *p == '-') && (after_digit || after_cc)) {
            after_digit = after_cc = false;
        } else {
            return false;
        }
    }
    /* 179xx0 is a carrier code Parse() strips (CN's national prefix for parsing). */
    if (digits != 11 || !after_digit || national / 100000000 == 179)
        return false;
    n->set_country_code(86);
    n->set_national_number(national);
    return true;
}

[[noreturn]] void s_oom() {
    std::fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);
    std::abort();
}

} // namespace

static int s_parse(const char *text, const char *region, lf_pn_result_t *out,
                   bool shortcut) {
    std::memset(out, 0, sizeof *out);
    if (!text || !region)
        return -1;
    try {
        PhoneNumberUtil *u = s_util();
        PhoneNumber n;
        if (!(shortcut && s_cn_mobile(text, region, &n)) &&
            u->Parse(text, region, &n) != PhoneNumberUtil::NO_PARSING_ERROR)
            return -1;
        std::string s;
        u->Format(n, PhoneNumberUtil::E164, &s);
        if (s.size() >= sizeof out->e164)
            return -1;
        s_copy(out->e164, sizeof out->e164, s);
        out->country_code = n.country_code();
        /* Valid means "of some known type": IsValidNumber(n) is exactly
         * GetNumberType(n) != UNKNOWN (both match the number against its region's
         * patterns, the part that costs), so the type is asked once, not twice. */
        PhoneNumberUtil::PhoneNumberType type = u->GetNumberType(n);
        out->valid = type != PhoneNumberUtil::UNKNOWN;
        if (out->valid) {
            std::string r;
            u->GetRegionCodeForNumber(n, &r);
            if (r.size() == 2)
                s_copy(out->country, sizeof out->country, r);
            s_copy(out->type, sizeof out->type, s_type_name(type));
            out->reason = LF_PN_VALID;
            return 0;
        }
        s_copy(out->type, sizeof out->type, "UNKNOWN");
        switch (u->IsPossibleNumberWithReason(n)) {
        case PhoneNumberUtil::INVALID_COUNTRY_CODE:
            out->reason = LF_PN_INVALID_COUNTRY_CODE;
            break;
        case PhoneNumberUtil::TOO_SHORT:
        case PhoneNumberUtil::IS_POSSIBLE_LOCAL_ONLY:
            out->reason = LF_PN_TOO_SHORT;
            break;
        case PhoneNumberUtil::TOO_LONG:
            out->reason = LF_PN_TOO_LONG;
            break;
        case PhoneNumberUtil::INVALID_LENGTH:
            out->reason = LF_PN_INVALID_LENGTH;
            break;
        default:
            out->reason = LF_PN_NOT_ALLOCATED;
            break;
        }
        return 0;
    } catch (const std::bad_alloc &) {
        s_oom();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "ERROR libphonenumber raised: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "ERROR libphonenumber raised an unknown exception\n");
    }
    std::memset(out, 0, sizeof *out);
    return -1;
}

extern "C" int lf_pn_parse(const char *text, const char *region, lf_pn_result_t *out) {
    return s_parse(text, region, out, true);
}

extern "C" int lf_pn_parse_library(const char *text, const char *region,
                                   lf_pn_result_t *out) {
    return s_parse(text, region, out, false);
}

extern "C" int lf_pn_region_supported(const char *region) {
    if (!region)
        return 0;
    try {
        return s_util()->GetCountryCodeForRegion(region) != 0;
    } catch (const std::bad_alloc &) {
        s_oom();
    } catch (...) {
        return 0;
    }
}

extern "C" const char *lf_pn_version(void) {
    return LF_PHONENUMBER_VERSION;
}
