#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

Test(util, uuid7_is_well_formed_unique_and_time_ordered) {
    char prev[37] = "", id[37];
    for (int i = 0; i < 1000; i++) {
        lf_uuid7(id);
        cr_assert_eq(strlen(id), 36);
        cr_assert_eq(id[14], '7', "version nibble: %s", id);
        cr_assert(strchr("89ab", id[19]), "variant: %s", id);
        cr_assert(strcmp(id, prev) != 0);
        /* Same or later millisecond prefix: never earlier. */
        cr_assert(strncmp(id, prev, 13) >= 0, "%s after %s", id, prev);
        memcpy(prev, id, sizeof id);
    }
}

/* Event ids (lf_uuid4) come from a per-thread pool of random bytes refilled by one
 * getrandom() call: across many refills and two threads, every id is well formed and
 * different, and every random digit varies (a pool handed out twice, or never filled,
 * would repeat ids or leave zeros). */
#define S_N4 2000
static char s_ids4[2 * S_N4][37];

static void *s_make4(void *arg) {
    char(*ids)[37] = arg;
    for (int i = 0; i < S_N4; i++)
        lf_uuid4(ids[i]);
    return NULL;
}

static int s_cmp_id(const void *a, const void *b) {
    return strcmp(a, b);
}

Test(util, uuid4_ids_are_random_well_formed_and_unique_across_threads) {
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_make4, s_ids4[S_N4]), 0);
    s_make4(s_ids4[0]);
    pthread_join(t, NULL);
    int seen[36][16] = {{0}};
    for (int i = 0; i < 2 * S_N4; i++) {
        const char *id = s_ids4[i];
        cr_assert(lf_uuid_valid(id), "%s", id);
        cr_assert_eq(id[14], '4', "version nibble: %s", id);
        cr_assert(strchr("89ab", id[19]), "variant: %s", id);
        for (int k = 0; k < 36; k++)
            if (id[k] != '-')
                seen[k][strchr("0123456789abcdef", id[k]) - "0123456789abcdef"] = 1;
    }
    for (int k = 0; k < 36; k++) {
        if (k == 8 || k == 13 || k == 18 || k == 23 || k == 14)
            continue;
        int values = 0;
        for (int v = 0; v < 16; v++)
            values += seen[k][v];
        cr_expect_eq(values, k == 19 ? 4 : 16, "digit %d took %d values", k, values);
    }
    qsort(s_ids4, 2 * S_N4, sizeof s_ids4[0], s_cmp_id);
    for (int i = 1; i < 2 * S_N4; i++)
        cr_assert(strcmp(s_ids4[i - 1], s_ids4[i]) != 0, "%s twice", s_ids4[i]);
}

/* A batch's event ids as a uuid[] literal: n distinct ids in braces, commas between. */
Test(util, uuid4_array_is_a_literal_of_n_distinct_ids) {
    char *a = lf_uuid4_array(0);
    cr_expect_str_eq(a, "{}");
    free(a);
    a = lf_uuid4_array(3);
    cr_assert_eq(strlen(a), 2 + 3 * 36 + 2, "%s", a);
    cr_assert_eq(a[0], '{');
    cr_assert_eq(a[strlen(a) - 1], '}');
    char id[3][37];
    for (int i = 0; i < 3; i++) {
        memcpy(id[i], a + 1 + 37 * i, 36);
        id[i][36] = '\0';
        cr_expect(lf_uuid_valid(id[i]), "%s", id[i]);
        cr_expect_eq(id[i][14], '4', "%s", id[i]);
        if (i < 2)
            cr_expect_eq(a[1 + 37 * i + 36], ',', "%s", a);
    }
    cr_expect(strcmp(id[0], id[1]) && strcmp(id[1], id[2]) && strcmp(id[0], id[2]));
    free(a);
}

Test(util, uuid_valid_takes_the_canonical_form_only) {
    char id[37];
    lf_uuid7(id);
    cr_expect(lf_uuid_valid(id), "%s", id);
    cr_expect(lf_uuid_valid("019AD735-840A-7C4C-8A42-38A0B923820D"));
    cr_expect(!lf_uuid_valid(""));
    cr_expect(!lf_uuid_valid("not-a-uuid"));
    cr_expect(!lf_uuid_valid("019ad735-840a-7c4c-8a42-38a0b923820"), "one digit short");
    cr_expect(!lf_uuid_valid("019ad735-840a-7c4c-8a42-38a0b923820d0"), "one digit long");
    cr_expect(!lf_uuid_valid("019ad735840a7c4c8a4238a0b923820d"), "no hyphens");
    cr_expect(!lf_uuid_valid("019ad735-840a-7c4c-8a42-38a0b923820g"));
    cr_expect(!lf_uuid_valid("{19ad735-840a-7c4c-8a42-38a0b923820d}"));
}

Test(util, rfc3339_formats_utc_with_milliseconds) {
    char out[32];
    lf_rfc3339(0, out, sizeof out);
    cr_expect_str_eq(out, "1970-01-01T00:00:00.000Z");
    lf_rfc3339(1700000000123LL, out, sizeof out);
    cr_expect_str_eq(out, "2023-11-14T22:13:20.123Z");
}

Test(util, rfc3339_shape_takes_times_with_an_offset_only) {
    cr_expect(lf_rfc3339_shape("2026-05-01T09:30:00+08:00"));
    cr_expect(lf_rfc3339_shape("2026-05-01T01:30:00.250Z"));
    cr_expect(lf_rfc3339_shape("2026-05-01t01:30:00z"));
    cr_expect(!lf_rfc3339_shape("2026-05-01 09:30:00+08:00"));
    cr_expect(!lf_rfc3339_shape("2026-05-01T09:30:00"), "no offset");
    cr_expect(!lf_rfc3339_shape("2026-05-01T09:30:00+08:00 call 13912345678"));
    cr_expect(!lf_rfc3339_shape("call me on 13912345678 tomorrow"));
    cr_expect(!lf_rfc3339_shape(""));
}

Test(util, strlcpy_truncates_and_terminates) {
    char b[4];
    cr_expect_eq(lf_strlcpy(b, "abcdef", sizeof b), 6);
    cr_expect_str_eq(b, "abc");
    cr_expect_eq(lf_path_join(b, sizeof b, "dir", "file"), -1);
}

Test(util, read_file_missing_is_null) {
    cr_expect_null(lf_read_file("/nonexistent/leadflow", NULL));
    size_t n = 0;
    char *s = lf_read_file("config/sla.json", &n);
    cr_assert(s);
    cr_expect_eq(strlen(s), n);
    free(s);
}

/* lf_itoa against snprintf, at the ends of the range and around the powers of ten. */
Test(util, itoa_writes_what_snprintf_writes) {
    const long long vs[] = {0,
                            1,
                            -1,
                            9,
                            10,
                            -10,
                            99,
                            100,
                            123456789,
                            -987654321,
                            999999999999999999LL,
                            LLONG_MAX,
                            LLONG_MIN,
                            LLONG_MIN + 1};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        char got[24], want[24];
        size_t n = lf_itoa(vs[i], got);
        snprintf(want, sizeof want, "%lld", vs[i]);
        cr_expect_str_eq(got, want);
        cr_expect_eq(n, strlen(want), "length of %s", want);
    }
}
