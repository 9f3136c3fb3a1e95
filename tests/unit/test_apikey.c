/* API keys as stored: the SHA-256 of the key in lower-case hex (common/apikey.c), the
 * same text PostgreSQL's encode(sha256(key), 'hex') gives, which tests and the keys
 * CLI write into api_keys. */
#include <criterion/criterion.h>
#include <string.h>

#include "lf/apikey.h"

/* FIPS 180-2 test vectors, and the same key hashed again (the digest is fetched from
 * OpenSSL once and reused). */
Test(apikey, hash_is_sha256_in_lower_case_hex) {
    char out[65];
    lf_apikey_hash("abc", out);
    cr_expect_str_eq(out,
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    lf_apikey_hash("", out);
    cr_expect_str_eq(out,
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    lf_apikey_hash("abc", out);
    cr_expect_str_eq(out,
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_expect_eq(strlen(out), 64);
}
