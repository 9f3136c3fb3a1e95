/* intake's reply helpers over a real libmicrohttpd daemon and libcurl. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <string.h>

#include "../../services/intake/intake.h"

static lf_intake_t s_in;

static enum MHD_Result s_null_body(void *cls, struct MHD_Connection *conn,
                                   const char *url, const char *method,
                                   const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls) {
    /* What a handler hands over when its json_pack failed. */
    return lf_reply_json(&s_in, conn, 200, NULL);
}

static size_t s_collect(char *p, size_t size, size_t n, void *arg) {
    strncat(arg, p, size * n < 200 ? size * n : 200);
    return size * n;
}

/* A reply whose body could not be built answers 500 with a JSON error. The old code
 * passed the NULL on to strlen and crashed the service. */
Test(http, a_reply_without_body_is_a_500_not_a_crash) {
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                                            NULL, s_null_body, NULL, MHD_OPTION_END);
    cr_assert(d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char url[64], body[512] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", (unsigned)info->port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cr_expect_eq(status, 500);
    cr_expect(strstr(body, "\"internal\""), "body: %s", body);
    cr_expect_eq(atomic_load(&s_in.responses_5xx), 1);
    curl_easy_cleanup(c);
    MHD_stop_daemon(d);
}
