/* secret_ref.c - secrets named by reference in configuration files (lf/secret_ref.h). */
#include "lf/secret_ref.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

#define S_MAX_SECRET 4096

int lf_secret_ref_resolve(json_t *dest, char *why, size_t whysz) {
    json_t *env = json_object_get(dest, "secret_env");
    json_t *file = json_object_get(dest, "secret_file");
    if (!env && !file)
        return 0;
    if ((env && file) || json_object_get(dest, "secret")) {
        snprintf(why, whysz, "give one of secret, secret_env and secret_file");
        return -1;
    }
    if (env) {
        const char *name = json_string_value(env);
        const char *v = name && *name ? getenv(name) : NULL;
        if (!name || !*name) {
            snprintf(why, whysz, "secret_env must name an environment variable");
            return -1;
        }
        if (!v || !*v || strlen(v) > S_MAX_SECRET) {
            snprintf(why, whysz, "secret_env: %.64s is %s", name,
                     v && *v ? "longer than 4096 bytes" : "not set or empty");
            return -1;
        }
        json_object_set_new(dest, "secret", json_string(v));
        json_object_del(dest, "secret_env");
        return 0;
    }
    const char *path = json_string_value(file);
    if (!path || path[0] != '/') {
        snprintf(why, whysz, "secret_file must be an absolute path");
        return -1;
    }
    size_t len = 0;
    char *text = lf_read_file(path, &len);
    if (!text) {
        snprintf(why, whysz, "secret_file: cannot read %.200s", path);
        return -1;
    }
    if (len > 0 && text[len - 1] == '\n')
        text[--len] = '\0';
    if (len > 0 && text[len - 1] == '\r')
        text[--len] = '\0';
    int ok = len > 0 && len <= S_MAX_SECRET && strlen(text) == len;
    if (ok) {
        json_object_set_new(dest, "secret", json_string(text));
        json_object_del(dest, "secret_file");
    } else {
        snprintf(why, whysz, "secret_file: %.200s is %s", path,
                 len == 0 ? "empty" : "not one text of at most 4096 bytes");
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return ok ? 0 : -1;
}
