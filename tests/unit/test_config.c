#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lf/config.h"

static const lf_cfg_def_t s_defs[] = {{"LFT_PORT", LF_CFG_INT, "8080", 1, 65535, "port"},
                                      {"LFT_NAME", LF_CFG_STR, "leadflow", 0, 0, "name"},
                                      {"LFT_OPT", LF_CFG_STR, NULL, 0, 0, "optional"},
                                      {NULL, 0, NULL, 0, 0, NULL}};

static void s_clear(void) {
    unsetenv("LFT_PORT");
    unsetenv("LFT_NAME");
    unsetenv("LFT_OPT");
}

TestSuite(config, .init = s_clear);

Test(config, defaults_apply_when_unset) {
    char err[128];
    lf_config_t *c = lf_config_load(s_defs, err, sizeof err);
    cr_assert(c);
    cr_expect_eq(lf_config_int(c, "LFT_PORT"), 8080);
    cr_expect_str_eq(lf_config_str(c, "LFT_NAME"), "leadflow");
    cr_expect_null(lf_config_str(c, "LFT_OPT"));
    lf_config_destroy(&c);
    cr_expect_null(c);
    lf_config_destroy(&c); /* NULL is accepted */
}

Test(config, environment_overrides_and_is_copied) {
    setenv("LFT_PORT", "9090", 1);
    setenv("LFT_OPT", "x", 1);
    char err[128];
    lf_config_t *c = lf_config_load(s_defs, err, sizeof err);
    cr_assert(c);
    setenv("LFT_OPT", "changed later", 1);
    cr_expect_eq(lf_config_int(c, "LFT_PORT"), 9090);
    cr_expect_str_eq(lf_config_str(c, "LFT_OPT"), "x");
    lf_config_destroy(&c);
}

Test(config, bad_values_are_refused_with_the_name) {
    const char *bad[] = {"0", "65536", "80x", "", " 80", "-1", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!*bad[i])
            continue; /* empty means unset: the default applies */
        setenv("LFT_PORT", bad[i], 1);
        char err[128] = "";
        lf_config_t *c = lf_config_load(s_defs, err, sizeof err);
        cr_expect_null(c, "\"%s\" was accepted", bad[i]);
        cr_expect(strstr(err, "LFT_PORT"), "error does not name the variable: %s", err);
        lf_config_destroy(&c);
    }
}
