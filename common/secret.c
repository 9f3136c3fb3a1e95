/* secret.c - sealing and opening notification secrets (lf/secret.h) with OpenSSL's
 * AES-256-GCM. Nothing here is written by hand but the framing: the cipher, the random
 * nonce and base64 are OpenSSL's. The associated data names what the value is, so a
 * sealed value of another kind (if another ever exists) does not open as a secret. */
#include "lf/secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

#define S_KEY_LEN 32
#define S_NONCE_LEN 12
#define S_TAG_LEN 16
#define S_MAX_PLAIN 4096

struct lf_secret_key {
    unsigned char k[S_KEY_LEN];
};

static const unsigned char s_aad[] = "leadflow notification secret v1";

int lf_secret_key_parse(const char *text, lf_secret_key_t **out, char *err,
                        size_t errsz) {
    *out = NULL;
    if (!text || !*text)
        return 0;
    unsigned char k[S_KEY_LEN + 3];
    size_t n = strlen(text);
    int ok = 0;
    if (n == 2 * S_KEY_LEN) {
        ok = 1;
        for (size_t i = 0; i < S_KEY_LEN && ok; i++) {
            int hi = OPENSSL_hexchar2int((unsigned char)text[2 * i]);
            int lo = OPENSSL_hexchar2int((unsigned char)text[2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            k[i] = (unsigned char)(hi * 16 + lo);
        }
    } else if (n == 44 && text[43] == '=' && text[42] != '=') {
        /* 44 base64 characters with one '=' of padding: 32 bytes (EVP_DecodeBlock
         * counts the padding as a 33rd zero byte). */
        ok = EVP_DecodeBlock(k, (const unsigned char *)text, 44) == S_KEY_LEN + 1;
    }
    if (!ok) {
        OPENSSL_cleanse(k, sizeof k);
        snprintf(err, errsz,
                 "LEADFLOW_SECRET_KEY must be 32 random bytes written as 64 hex digits "
                 "or 44 base64 characters (openssl rand -hex 32)");
        return -1;
    }
    lf_secret_key_t *key = lf_calloc(1, sizeof *key);
    memcpy(key->k, k, S_KEY_LEN);
    OPENSSL_cleanse(k, sizeof k);
    *out = key;
    return 0;
}

void lf_secret_key_destroy(lf_secret_key_t **self_p) {
    if (!self_p || !*self_p)
        return;
    OPENSSL_cleanse((*self_p)->k, S_KEY_LEN);
    free(*self_p);
    *self_p = NULL;
}

int lf_secret_is_sealed(const char *stored) {
    return stored && !strncmp(stored, LF_SECRET_PREFIX, strlen(LF_SECRET_PREFIX));
}

char *lf_secret_seal(const lf_secret_key_t *key, const char *plain) {
    size_t n = strlen(plain);
    if (!key || n > S_MAX_PLAIN)
        return NULL;
    unsigned char *raw = lf_malloc(S_NONCE_LEN + n + S_TAG_LEN);
    char *out = NULL;
    int len = 0, fin = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c || RAND_bytes(raw, S_NONCE_LEN) != 1 ||
        EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key->k, raw) != 1 ||
        EVP_EncryptUpdate(c, NULL, &len, s_aad, (int)sizeof s_aad - 1) != 1 ||
        EVP_EncryptUpdate(c, raw + S_NONCE_LEN, &len, (const unsigned char *)plain,
                          (int)n) != 1 ||
        EVP_EncryptFinal_ex(c, raw + S_NONCE_LEN + len, &fin) != 1 ||
        (size_t)(len + fin) != n ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, S_TAG_LEN, raw + S_NONCE_LEN + n) !=
            1)
        goto out;
    size_t rawlen = S_NONCE_LEN + n + S_TAG_LEN, pre = strlen(LF_SECRET_PREFIX);
    out = lf_malloc(pre + 4 * ((rawlen + 2) / 3) + 1);
    memcpy(out, LF_SECRET_PREFIX, pre);
    EVP_EncodeBlock((unsigned char *)out + pre, raw, (int)rawlen);
out:
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(raw, S_NONCE_LEN + n + S_TAG_LEN);
    free(raw);
    return out;
}

int lf_secret_open(const lf_secret_key_t *key, const char *stored, char **plain,
                   char *err, size_t errsz) {
    *plain = NULL;
    if (!lf_secret_is_sealed(stored)) {
        *plain = lf_strdup(stored ? stored : "");
        return 0;
    }
    if (!key) {
        snprintf(
            err, errsz,
            "the destination's secret is stored encrypted and LEADFLOW_SECRET_KEY is "
            "not set");
        return -1;
    }
    const char *b64 = stored + strlen(LF_SECRET_PREFIX);
    size_t blen = strlen(b64);
    if (blen % 4 || blen < 4 ||
        blen > 4 * ((S_NONCE_LEN + S_MAX_PLAIN + S_TAG_LEN) / 3 + 1)) {
        snprintf(err, errsz, "the destination's stored secret is damaged (not base64)");
        return -1;
    }
    unsigned char *raw = lf_malloc(blen / 4 * 3 + 1);
    int got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
    /* EVP_DecodeBlock counts the padding as zero bytes: take them off again. */
    if (got >= 0)
        got -= (blen > 0 && b64[blen - 1] == '=') + (blen > 1 && b64[blen - 2] == '=');
    if (got < S_NONCE_LEN + S_TAG_LEN) {
        free(raw);
        snprintf(err, errsz, "the destination's stored secret is damaged (too short)");
        return -1;
    }
    int n = got - S_NONCE_LEN - S_TAG_LEN, len = 0, fin = 0, ok = 0;
    char *out = lf_malloc((size_t)n + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key->k, raw) == 1 &&
         EVP_DecryptUpdate(c, NULL, &len, s_aad, (int)sizeof s_aad - 1) == 1 &&
         EVP_DecryptUpdate(c, (unsigned char *)out, &len, raw + S_NONCE_LEN, n) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, S_TAG_LEN, raw + S_NONCE_LEN + n) ==
             1 &&
         EVP_DecryptFinal_ex(c, (unsigned char *)out + len, &fin) == 1 && len + fin == n;
    EVP_CIPHER_CTX_free(c);
    free(raw);
    if (!ok || memchr(out, '\0', (size_t)n)) {
        OPENSSL_cleanse(out, (size_t)n + 1);
        free(out);
        snprintf(err, errsz,
                 "the destination's secret does not decrypt with LEADFLOW_SECRET_KEY: it "
                 "was encrypted with another key (or the stored value is damaged)");
        return -1;
    }
    out[n] = '\0';
    *plain = out;
    return 0;
}
