/* company.c - the company key (lf/company.h).
 *
 * Sales teams recognise a known customer by its company, and the same company arrives as
 * "华东医疗器械(上海)有限公司" from a web form, "上海华东医疗器械有限公司" from a
 * trade-show list, "華東醫療器械有限公司" from a Hong Kong partner and "HuaDong Co.,
 * Ltd." from an English one. The key strips what varies between those spellings and keeps
 * what names the company: in a Chinese name that is the trade name and the trade (字号
 * and 行业), without the administrative area in front and the legal form behind.
 *
 * Unicode work is delegated: NFKC and case through libunistring (as normalize.c does),
 * traditional to simplified Chinese through ICU's "Traditional-Simplified" transliterator
 * (libunistring has no such mapping, and ICU's is the one CLDR maintains). That mapping
 * is one code point to one, so it is compiled in as ICU produces it (t2s_table.h, made by
 * tools/gen/t2s_table.c and checked against the linked ICU by the unit tests) instead of
 * building the transliterator at run time, which costs 55 ms and 4.6 MiB of resident
 * memory in every intake process. The rest is a small rule set over UTF-8 bytes: every
 * comparison is against a whole keyword at a character boundary, which UTF-8's
 * self-synchronisation makes safe. */
#include "lf/company.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <unictype.h>
#include <unistr.h>

#include "lf/normalize.h"
#include "t2s_table.h"

#define S_OOM()                                                                          \
    do {                                                                                 \
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);           \
        abort();                                                                         \
    } while (0)

/* Longest company text worked on, in bytes. */
#define S_MAX 2048

/* Provinces, municipalities and the larger cities, as they appear in front of or in
   brackets inside company names. Regions such as 华东 are not places here: they are
   often part of the trade name itself. */
static const char *const s_places[] = {
    "中国",    "北京",      "天津",      "上海",      "重庆",     "河北",    "山西",
    "辽宁",    "吉林",      "黑龙江",    "江苏",      "浙江",     "安徽",    "福建",
    "江西",    "山东",      "河南",      "湖北",      "湖南",     "广东",    "海南",
    "四川",    "贵州",      "云南",      "陕西",      "甘肃",     "青海",    "台湾",
    "内蒙古",  "广西",      "西藏",      "宁夏",      "新疆",     "香港",    "澳门",
    "深圳",    "广州",      "杭州",      "南京",      "苏州",     "武汉",    "成都",
    "西安",    "长沙",      "郑州",      "济南",      "青岛",     "大连",    "沈阳",
    "长春",    "哈尔滨",    "合肥",      "福州",      "厦门",     "南昌",    "昆明",
    "贵阳",    "南宁",      "海口",      "三亚",      "太原",     "石家庄",  "呼和浩特",
    "兰州",    "西宁",      "银川",      "乌鲁木齐",  "拉萨",     "宁波",    "温州",
    "无锡",    "常州",      "佛山",      "东莞",      "珠海",     "中山",    "惠州",
    "汕头",    "烟台",      "潍坊",      "徐州",      "南通",     "扬州",    "绍兴",
    "嘉兴",    "台州",      "金华",      "泉州",      "漳州",     "洛阳",    "宜昌",
    "襄阳",    "株洲",      "衡阳",      "岳阳",      "常德",     "绵阳",    "桂林",
    "柳州",    "唐山",      "保定",      "邯郸",      "廊坊",     "淄博",    "临沂",
    "济宁",    "芜湖",      "昆山",      "江门",      "china",    "beijing", "shanghai",
    "tianjin", "chongqing", "shenzhen",  "guangzhou", "hangzhou", "nanjing", "suzhou",
    "wuhan",   "chengdu",   "hong kong", "hongkong",  "macau",    "taiwan",  "prc",
    NULL};

/* Administrative suffixes a place may carry. */
static const char *const s_place_suffixes[] = {"特别行政区", "自治区", "省",
                                               "市",         "",       NULL};

/* Words in brackets that say nothing about which company it is. */
static const char *const s_bracket_noise[] = {"集团",     "总部", "group",
                                              "holdings", "",     NULL};

/* Legal forms and their companions at the end of a name, longest first where one ends
   another. Latin ones match whole words only. */
static const char *const s_cjk_suffixes[] = {"集团股份有限公司",
                                             "股份有限公司",
                                             "有限责任公司",
                                             "集团有限公司",
                                             "有限公司",
                                             "股份公司",
                                             "集团公司",
                                             "总公司",
                                             "公司",
                                             "集团",
                                             NULL};
static const char *const s_latin_suffixes[] = {
    "co",   "ltd",         "limited", "inc",   "incorporated", "llc", "gmbh",
    "corp", "corporation", "company", "plc",   "ag",           "sa",  "bv",
    "pte",  "pty",         "kg",      "group", "holdings",     "lp",  "llp",
    "srl",  "spa",         "oy",      "ab",    "as",           "nv",  "kk",
    NULL};

/* Branch words: the branch is its parent company. */
static const char *const s_branch_words[] = {"分公司", "办事处", "代表处", "分厂",
                                             "branch", "office", NULL};

static int s_fail(const char **why, const char *reason) {
    if (why)
        *why = reason;
    return -1;
}

static int s_t2s_cmp(const void *key, const void *entry) {
    unsigned k = *(const unsigned *)key, e = ((const unsigned *)entry)[0];
    return k < e ? -1 : k > e;
}

ucs4_t lf_company_simplify_char(ucs4_t uc) {
    const unsigned *e =
        bsearch(&uc, s_t2s, sizeof s_t2s / sizeof *s_t2s, sizeof *s_t2s, s_t2s_cmp);
    return e ? e[1] : uc;
}

/* Traditional to simplified, into `s` (at most `cap` bytes with the NUL). Returns 0, or
   -1 when the result does not fit. */
static int s_simplify(char *s, size_t cap) {
    size_t len = strlen(s), o = 0;
    char *out = malloc(len * 2 + 1);
    if (!out)
        S_OOM();
    for (size_t i = 0; i < len;) {
        ucs4_t uc;
        int k = u8_mbtouc(&uc, (const uint8_t *)s + i, len - i);
        if (k <= 0)
            k = 1;
        int w = u8_uctomb((uint8_t *)out + o, lf_company_simplify_char(uc), 4);
        o += (size_t)(w > 0 ? w : 0);
        i += (size_t)k;
    }
    out[o] = '\0';
    int rc = o + 1 <= cap ? 0 : -1;
    if (rc == 0)
        memcpy(s, out, o + 1);
    free(out);
    return rc;
}

static void s_rtrim(char *s) {
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
}

/* 1 when s ends with `suf`; for ASCII words the character before must not be a letter or
   digit (whole words only). */
static int s_ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    if (k == 0 || k > n || memcmp(s + n - k, suf, k) != 0)
        return 0;
    if ((unsigned char)suf[0] < 0x80 && n > k) {
        char c = s[n - k - 1];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* Length of the place name (with an administrative suffix) at the end of s, 0 if none. */
static size_t s_trailing_place(const char *s) {
    /* Suffix first, then the place before it (see s_leading_place). */
    size_t best = 0, n = strlen(s);
    for (const char *const *x = s_place_suffixes; *x; x++) {
        size_t xl = strlen(*x);
        if (xl > n || memcmp(s + n - xl, *x, xl) != 0)
            continue;
        for (const char *const *p = s_places; *p; p++) {
            size_t pl = strlen(*p), k = pl + xl;
            if (k == 0 || k <= best || k > n || memcmp(s + n - k, *p, pl) != 0)
                continue;
            /* as s_ends_with: an ASCII place must start at a word boundary */
            unsigned char first = (unsigned char)(pl ? (*p)[0] : (*x)[0]);
            char c = n > k ? s[n - k - 1] : '\0';
            if (first < 0x80 && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                continue;
            best = k;
        }
    }
    return best;
}

/* Length of the place name (with an administrative suffix) at the start of s, 0 if none.
   An ASCII place must end at a word boundary. */
static size_t s_leading_place(const char *s) {
    /* Place first, then suffix, without building "place+suffix" strings: this runs for
     * every lead, and the snprintf per pair was a quarter of intake's CPU. */
    size_t best = 0;
    for (const char *const *p = s_places; *p; p++) {
        size_t pl = strlen(*p);
        if (strncmp(s, *p, pl) != 0)
            continue;
        for (const char *const *x = s_place_suffixes; *x; x++) {
            size_t xl = strlen(*x), k = pl + xl;
            if (k <= best || strncmp(s + pl, *x, xl) != 0)
                continue;
            char c = s[k];
            unsigned char first = (unsigned char)(pl ? (*p)[0] : (*x)[0]);
            if (first < 0x80 && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                continue;
            best = k;
        }
    }
    return best;
}

static int s_is_place(const char *s) {
    size_t n = strlen(s);
    return n > 0 && s_trailing_place(s) == n;
}

static int s_in(const char *s, const char *const *list) {
    for (const char *const *p = list; *p; p++)
        if (strcmp(s, *p) == 0)
            return 1;
    return 0;
}

/* Characters (not bytes) that count in what is left: letters and digits. */
static size_t s_weight(const char *s) {
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len;) {
        ucs4_t uc;
        int k = u8_mbtouc(&uc, (const uint8_t *)s + i, len - i);
        if (uc_is_general_category(uc, UC_CATEGORY_L) ||
            uc_is_general_category(uc, UC_CATEGORY_N))
            n++;
        i += (size_t)(k > 0 ? k : 1);
    }
    return n;
}

/* One pass of trimming at the end. Returns 1 when something was removed. */
static int s_trim_end(char *s) {
    s_rtrim(s);
    size_t n = strlen(s);
    /* A name that is nothing but a legal form keeps it: "有限公司" is not "有限". */
    if (n == 0 || s_in(s, s_cjk_suffixes) || s_in(s, s_latin_suffixes))
        return 0;
    /* A bracket group at the end: a place or noise goes, anything else stays. */
    if (s[n - 1] == ')') {
        char *open = strrchr(s, '(');
        if (open) {
            char inner[S_MAX];
            snprintf(inner, sizeof inner, "%.*s", (int)(s + n - 1 - open - 1), open + 1);
            char *in = inner;
            while (*in == ' ')
                in++;
            s_rtrim(in);
            if (s_is_place(in) || s_in(in, s_bracket_noise)) {
                *open = '\0';
                return 1;
            }
        }
    }
    for (const char *const *b = s_branch_words; *b; b++)
        if (s_ends_with(s, *b) && strlen(*b) < n) {
            s[n - strlen(*b)] = '\0';
            s_rtrim(s);
            size_t p = s_trailing_place(s);
            if (p && p < strlen(s))
                s[strlen(s) - p] = '\0';
            return 1;
        }
    for (const char *const *x = s_cjk_suffixes; *x; x++)
        if (s_ends_with(s, *x) && strlen(*x) < n) {
            s[n - strlen(*x)] = '\0';
            return 1;
        }
    for (const char *const *x = s_latin_suffixes; *x; x++)
        if (s_ends_with(s, *x) && strlen(*x) < n) {
            s[n - strlen(*x)] = '\0';
            return 1;
        }
    return 0;
}

/* Removes "(place)" groups anywhere; other brackets become spaces. */
static void s_drop_bracket_places(char *s) {
    char *open;
    char *from = s;
    while ((open = strchr(from, '('))) {
        char *close = strchr(open, ')');
        if (!close)
            break;
        char inner[S_MAX];
        snprintf(inner, sizeof inner, "%.*s", (int)(close - open - 1), open + 1);
        char *in = inner;
        while (*in == ' ')
            in++;
        s_rtrim(in);
        if (s_is_place(in) || s_in(in, s_bracket_noise)) {
            memmove(open, close + 1, strlen(close + 1) + 1);
            from = open;
        } else {
            *open = ' ';
            *close = ' ';
            from = close + 1;
        }
    }
    for (char *p = s; *p; p++)
        if (*p == '(' || *p == ')')
            *p = ' ';
}

/* Keeps letters, digits and marks; everything else (spaces, punctuation, symbols) goes.
 */
static void s_keep_alnum(char *s) {
    size_t len = strlen(s), o = 0;
    for (size_t i = 0; i < len;) {
        ucs4_t uc;
        int k = u8_mbtouc(&uc, (const uint8_t *)s + i, len - i);
        if (k <= 0)
            k = 1;
        if (uc_is_general_category(uc, UC_CATEGORY_L) ||
            uc_is_general_category(uc, UC_CATEGORY_N) ||
            uc_is_general_category(uc, UC_CATEGORY_M)) {
            memmove(s + o, s + i, (size_t)k);
            o += (size_t)k;
        }
        i += (size_t)k;
    }
    s[o] = '\0';
}

/* Brackets of every width and shape become ( ); other punctuation and symbols become a
   space, so that "co.,ltd." splits into words. */
static void s_fold_punct(char *s, size_t cap) {
    size_t len = strlen(s), o = 0;
    char *out = malloc(len + 1);
    if (!out)
        S_OOM();
    for (size_t i = 0; i < len;) {
        ucs4_t uc;
        int k = u8_mbtouc(&uc, (const uint8_t *)s + i, len - i);
        if (k <= 0)
            k = 1;
        if (uc == '(' || uc == '[' || uc == '{' || uc == 0x3010 || uc == 0x300C ||
            uc == 0x3014 || uc == 0x3008 || uc == 0x300A)
            out[o++] = '(';
        else if (uc == ')' || uc == ']' || uc == '}' || uc == 0x3011 || uc == 0x300D ||
                 uc == 0x3015 || uc == 0x3009 || uc == 0x300B)
            out[o++] = ')';
        else if (uc_is_general_category(uc, UC_CATEGORY_P) ||
                 uc_is_general_category(uc, UC_CATEGORY_S) || uc == ' ')
            out[o++] = ' ';
        else {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k;
        }
        i += (size_t)k;
    }
    out[o] = '\0';
    snprintf(s, cap, "%s", out);
    free(out);
}

int lf_company_key(const char *company, char *out, size_t outsz, const char **why) {
    if (!out || outsz == 0)
        return s_fail(why, "output buffer too small");
    out[0] = '\0';
    /* On the stack: a malloc of this size made glibc consolidate its free lists at
     * every lead (2.6% of intake's CPU in a perf profile). */
    char s[S_MAX];
    int rc = lf_norm_text(company, s, S_MAX / 2, why);
    if (rc != 0)
        goto out;
    if (s_simplify(s, S_MAX) != 0) {
        rc = s_fail(why, "too long");
        goto out;
    }
    size_t ll = 0;
    uint8_t *low = u8_tolower((const uint8_t *)s, strlen(s) + 1, NULL, NULL, NULL, &ll);
    if (!low)
        S_OOM();
    snprintf(s, S_MAX, "%s", (const char *)low);
    free(low);
    s_fold_punct(s, S_MAX);

    /* What is left when every rule has run; kept in case nothing would be left. */
    char fallback[S_MAX];
    snprintf(fallback, sizeof fallback, "%s", s);
    s_keep_alnum(fallback);

    while (s_trim_end(s))
        ;
    s_drop_bracket_places(s);
    while (s_trim_end(s))
        ;
    /* "The Boeing Company" is Boeing. */
    {
        char *p = s;
        while (*p == ' ')
            p++;
        if (!strncmp(p, "the ", 4) && s_weight(p + 4) >= 2)
            memmove(s, p + 4, strlen(p + 4) + 1);
    }
    /* A place in front, twice at most ("中国上海…"), only when enough is left. */
    for (int i = 0; i < 2; i++) {
        char *p = s;
        while (*p == ' ')
            p++;
        size_t k = s_leading_place(p);
        if (k == 0 || s_weight(p + k) < 4)
            break;
        memmove(s, p + k, strlen(p + k) + 1);
    }
    s_keep_alnum(s);
    const char *key = s[0] ? s : fallback;
    if (!key[0]) {
        rc = 1;
    } else if (strlen(key) + 1 > outsz) {
        rc = s_fail(why, "company key too long");
    } else {
        memcpy(out, key, strlen(key) + 1);
        rc = 0;
    }
out:
    return rc;
}
