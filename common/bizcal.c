/* bizcal.c - business calendars (see bizcal.h).
 *
 * Dates are day numbers (days since 1970-01-01 in the calendar's zone), converted with
 * Howard Hinnant's civil-date algorithms, so no struct tm, mktime or TZ is involved and
 * a calendar is plain read-only data. Each loaded year is two bitmaps over its days:
 * holidays and make-up working days. The year files are read once, when the calendar is
 * built; an operator adds next year's file and restarts (or reloads) the services.
 *
 * The arithmetic walks working windows, one window per step: a business week is ten
 * steps, so even an SLA of a few hundred business hours is a few hundred steps, and the
 * walk is bounded (three years of calendar days) so a calendar with no working time at
 * all answers -1 instead of looping. */
#include "lf/bizcal.h"

#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/tz.h"
#include "lf/util.h"

#define S_MAX_WINDOWS 8
#define S_HORIZON_DAYS (366 * 3)

typedef struct {
    int year;            /* the year the file is for */
    uint8_t holiday[46]; /* bit per day of the year (0 = 1 January) */
    uint8_t workday[46]; /* make-up working days (调休) */
} s_year_t;

struct lf_bizcal {
    lf_tz_t *tz;               /* the team's zone */
    unsigned work_days;        /* bit per weekday, 0 = Sunday */
    int win[S_MAX_WINDOWS][2]; /* working windows, minutes [start, end), sorted */
    int n_win;                 /* windows per working day, >= 1 */
    char set[32];              /* holiday set name ("CN"), "" = none */
    char dir[512];             /* where the year files are */
    s_year_t *years;           /* loaded years, ascending */
    size_t n_years;
};

/* ---- civil dates (days since 1970-01-01) ---- */

static int64_t s_days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153u * (unsigned)(m + (m > 2 ? -3 : 9)) + 2) / 5 + (unsigned)d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void s_civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static int64_t s_floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int s_weekday(int64_t day) {
    return (int)(((day + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
}

/* "2026-02-14" -> day number; -1 with *ok = false when malformed. */
static int64_t s_parse_date(const char *s, int *year, bool *ok) {
    int y, m, d, n = 0;
    *ok = s && strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) == 3 &&
          n == 10 && s[4] == '-' && s[7] == '-' && m >= 1 && m <= 12 && d >= 1 && d <= 31;
    if (!*ok)
        return -1;
    int64_t day = s_days_from_civil(y, m, d);
    int y2, m2, d2;
    s_civil_from_days(day, &y2, &m2, &d2);
    *ok = y2 == y && m2 == m && d2 == d; /* 2026-02-30 is not a date */
    *year = y;
    return day;
}

/* ---- configuration ---- */

/* "09:00" -> 540; "24:00" only as an end. -1 when malformed. */
static int s_hhmm(const json_t *v, bool is_end) {
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !is_end)))
        return -1;
    return h * 60 + m;
}

static const char *const s_day_names[7] = {"sun", "mon", "tue", "wed",
                                           "thu", "fri", "sat"};

static int s_set_bit(uint8_t *bits, int64_t day, int year) {
    int64_t i = day - s_days_from_civil(year, 1, 1);
    if (i < 0 || i >= 366)
        return -1;
    bits[i / 8] |= (uint8_t)(1u << (i % 8));
    return 0;
}

static bool s_bit(const uint8_t *bits, int64_t i) {
    return bits[i / 8] & (1u << (i % 8));
}

/* Reads one year file into `y`. Returns 0, or -1 with the reason in err. */
static int s_year_load(const char *path, s_year_t *y, char *err, size_t errsz) {
    json_error_t jerr;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    memset(y, 0, sizeof *y);
    if (!o) {
        snprintf(err, errsz, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    json_t *yr = json_object_get(o, "year"), *hol = json_object_get(o, "holidays"),
           *wd = json_object_get(o, "workdays");
    if (!json_is_integer(yr) || json_integer_value(yr) < 1971 ||
        json_integer_value(yr) > 2200) {
        snprintf(err, errsz, "%s: year: must be an integer year", path);
        goto out;
    }
    y->year = (int)json_integer_value(yr);
    if ((hol && !json_is_array(hol)) || (wd && !json_is_array(wd))) {
        snprintf(err, errsz, "%s: holidays and workdays must be arrays", path);
        goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach(hol, i, v) {
        int fy, ty;
        bool ok1, ok2;
        int64_t from =
            s_parse_date(json_string_value(json_object_get(v, "from")), &fy, &ok1);
        int64_t to = s_parse_date(json_string_value(json_object_get(v, "to")), &ty, &ok2);
        if (!ok1 || !ok2 || from > to || fy != y->year || ty != y->year) {
            snprintf(err, errsz,
                     "%s: holidays[%zu]: needs \"from\" and \"to\" dates (YYYY-MM-DD) in "
                     "%d, from <= to",
                     path, i, y->year);
            goto out;
        }
        for (int64_t d = from; d <= to; d++)
            s_set_bit(y->holiday, d, y->year);
    }
    json_array_foreach(wd, i, v) {
        int dy;
        bool ok;
        const char *ds = json_is_string(v)
                             ? json_string_value(v)
                             : json_string_value(json_object_get(v, "date"));
        int64_t d = s_parse_date(ds, &dy, &ok);
        if (!ok || dy != y->year) {
            snprintf(err, errsz, "%s: workdays[%zu]: needs a \"date\" (YYYY-MM-DD) in %d",
                     path, i, y->year);
            goto out;
        }
        s_set_bit(y->workday, d, y->year);
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static int s_year_cmp(const void *a, const void *b) {
    return ((const s_year_t *)a)->year - ((const s_year_t *)b)->year;
}

static int s_years_load(lf_bizcal_t *cal, char *err, size_t errsz) {
    char pattern[700];
    snprintf(pattern, sizeof pattern, "%s/%s-[0-9][0-9][0-9][0-9].json", cal->dir,
             cal->set);
    glob_t g;
    int grc = glob(pattern, 0, NULL, &g);
    if (grc == GLOB_NOMATCH)
        return 0;
    if (grc != 0) {
        snprintf(err, errsz, "calendar %s: cannot list %s", cal->set, cal->dir);
        return -1;
    }
    cal->years = lf_calloc(g.gl_pathc, sizeof *cal->years);
    int rc = 0;
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) {
        s_year_t *y = &cal->years[cal->n_years];
        if (s_year_load(g.gl_pathv[i], y, err, errsz) != 0) {
            rc = -1;
            break;
        }
        const char *base = strrchr(g.gl_pathv[i], '/');
        base = base ? base + 1 : g.gl_pathv[i];
        if (atoi(base + strlen(cal->set) + 1) != y->year) {
            snprintf(err, errsz, "%s: \"year\" is %d, the file name says otherwise",
                     g.gl_pathv[i], y->year);
            rc = -1;
            break;
        }
        cal->n_years++;
    }
    globfree(&g);
    if (rc == 0)
        qsort(cal->years, cal->n_years, sizeof *cal->years, s_year_cmp);
    return rc;
}

#define S_FAIL(...)                                                                      \
    do {                                                                                 \
        snprintf(err, errsz, __VA_ARGS__);                                               \
        goto fail;                                                                       \
    } while (0)

lf_bizcal_t *lf_bizcal_new(const json_t *cfg, const char *dir, char *err, size_t errsz) {
    lf_bizcal_t *cal = lf_calloc(1, sizeof *cal);
    json_t *v;
    char tzerr[200];
    if (cfg && !json_is_object(cfg))
        S_FAIL("calendar: must be an object");
    const char *key;
    json_object_foreach((json_t *)cfg, key, v) {
        if (strcmp(key, "timezone") && strcmp(key, "work_days") && strcmp(key, "hours") &&
            strcmp(key, "holidays") && strcmp(key, "description"))
            S_FAIL("calendar.%s: unknown key (timezone, work_days, hours, holidays)",
                   key);
    }
    v = json_object_get(cfg, "timezone");
    if (v && !json_is_string(v))
        S_FAIL("calendar.timezone: must be an IANA name or an offset like \"+08:00\"");
    cal->tz = lf_tz_load(v ? json_string_value(v) : "Asia/Shanghai", tzerr, sizeof tzerr);
    if (!cal->tz)
        S_FAIL("calendar.timezone: %s", tzerr);

    cal->work_days = 0x3E; /* Monday to Friday */
    if ((v = json_object_get(cfg, "work_days"))) {
        size_t i;
        json_t *d;
        if (!json_is_array(v) || json_array_size(v) == 0)
            S_FAIL(
                "calendar.work_days: must be a non-empty array like [\"mon\", \"tue\"]");
        cal->work_days = 0;
        json_array_foreach(v, i, d) {
            int k = 0;
            while (k < 7 &&
                   (!json_is_string(d) || strcmp(json_string_value(d), s_day_names[k])))
                k++;
            if (k == 7)
                S_FAIL("calendar.work_days[%zu]: not a weekday (sun, mon, ... sat)", i);
            cal->work_days |= 1u << k;
        }
    }

    cal->win[0][0] = 9 * 60;
    cal->win[0][1] = 18 * 60;
    cal->n_win = 1;
    if ((v = json_object_get(cfg, "hours"))) {
        /* ["09:00", "18:00"] or [["09:00", "12:00"], ["13:30", "18:00"]] */
        json_t *one = json_pack("[O]", v);
        const json_t *list = json_is_string(json_array_get(v, 0)) ? one : v;
        size_t i;
        json_t *w;
        if (!json_is_array(v) || json_array_size(list) == 0 ||
            json_array_size(list) > S_MAX_WINDOWS) {
            json_decref(one);
            S_FAIL("calendar.hours: must be [\"HH:MM\", \"HH:MM\"] or a list of up to %d "
                   "such windows",
                   S_MAX_WINDOWS);
        }
        cal->n_win = 0;
        json_array_foreach(list, i, w) {
            int s = s_hhmm(json_array_get(w, 0), false),
                e = s_hhmm(json_array_get(w, 1), true);
            if (!json_is_array(w) || json_array_size(w) != 2 || s < 0 || e <= s ||
                (i > 0 && s < cal->win[i - 1][1])) {
                json_decref(one);
                S_FAIL("calendar.hours[%zu]: must be [\"HH:MM\", \"HH:MM\"] with start < "
                       "end, in order, not overlapping",
                       i);
            }
            cal->win[i][0] = s;
            cal->win[i][1] = e;
            cal->n_win++;
        }
        json_decref(one);
    }

    if ((v = json_object_get(cfg, "holidays")) && !json_is_null(v)) {
        const char *s = json_string_value(v);
        bool ok = s && *s && strlen(s) < sizeof cal->set;
        for (const char *c = s; ok && *c; c++)
            ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                 (*c >= '0' && *c <= '9') || *c == '_';
        if (!ok)
            S_FAIL("calendar.holidays: must be the name of a set of year files, like "
                   "\"CN\"");
        lf_strlcpy(cal->set, s, sizeof cal->set);
        lf_strlcpy(cal->dir, dir ? dir : ".", sizeof cal->dir);
        if (s_years_load(cal, err, errsz) != 0)
            goto fail;
    }
    return cal;
fail:
    lf_bizcal_destroy(&cal);
    return NULL;
}

void lf_bizcal_destroy(lf_bizcal_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_tz_destroy(&(*self_p)->tz);
    free((*self_p)->years);
    free(*self_p);
    *self_p = NULL;
}

/* ---- days and windows ---- */

static const s_year_t *s_year(const lf_bizcal_t *cal, int year) {
    for (size_t i = 0; i < cal->n_years; i++)
        if (cal->years[i].year == year)
            return &cal->years[i];
    return NULL;
}

static bool s_working(const lf_bizcal_t *cal, int64_t day) {
    int y, m, d;
    s_civil_from_days(day, &y, &m, &d);
    const s_year_t *yr = s_year(cal, y);
    if (yr) {
        int64_t i = day - s_days_from_civil(y, 1, 1);
        if (s_bit(yr->workday, i))
            return true;
        if (s_bit(yr->holiday, i))
            return false;
    }
    return cal->work_days & (1u << s_weekday(day));
}

int lf_bizcal_is_working_day(const lf_bizcal_t *cal, int y, int m, int d) {
    return s_working(cal, s_days_from_civil(y, m, d)) ? 1 : 0;
}

int lf_bizcal_check(const lf_bizcal_t *cal, int64_t now, char *warn, size_t warnsz) {
    if (!cal->set[0])
        return 0;
    int64_t day = s_floor_div(now + lf_tz_offset(cal->tz, now), 86400);
    int y, m, d;
    s_civil_from_days(day, &y, &m, &d);
    for (int year = y; year <= y + 1; year++)
        if (!s_year(cal, year)) {
            snprintf(warn, warnsz,
                     "calendar %s: no holiday file for %d (%s/%s-%d.json): that year "
                     "counts weekends only",
                     cal->set, year, cal->dir, cal->set, year);
            return 1;
        }
    return 0;
}

/* The instant of minute `minute` of local day `day`. */
static int64_t s_at(const lf_bizcal_t *cal, int64_t day, int minute) {
    return lf_tz_from_local(cal->tz, day * 86400 + (int64_t)minute * 60);
}

/* Finds the working window that contains t or comes next. On success *start and *end
 * are the window's instants (start may lie before t) and 0 is returned; -1 when there
 * is no working time within the horizon. */
static int s_window(const lf_bizcal_t *cal, int64_t t, int64_t *start, int64_t *end) {
    int64_t local = t + lf_tz_offset(cal->tz, t);
    int64_t day = s_floor_div(local, 86400);
    for (int64_t k = 0; k < S_HORIZON_DAYS; k++, day++) {
        if (!s_working(cal, day))
            continue;
        for (int w = 0; w < cal->n_win; w++) {
            int64_t e = s_at(cal, day, cal->win[w][1]);
            if (e > t) {
                *start = s_at(cal, day, cal->win[w][0]);
                *end = e;
                return 0;
            }
        }
    }
    return -1;
}

int lf_bizcal_is_open(const lf_bizcal_t *cal, int64_t t) {
    int64_t s, e;
    return s_window(cal, t, &s, &e) == 0 && s <= t ? 1 : 0;
}

int64_t lf_bizcal_next_open(const lf_bizcal_t *cal, int64_t t) {
    int64_t s, e;
    if (s_window(cal, t, &s, &e) != 0)
        return -1;
    return s > t ? s : t;
}

int64_t lf_bizcal_add_seconds(const lf_bizcal_t *cal, int64_t t, int64_t secs) {
    int64_t cur = lf_bizcal_next_open(cal, t), s, e;
    if (cur < 0)
        return -1;
    if (secs < 0)
        secs = 0;
    for (;;) {
        if (s_window(cal, cur, &s, &e) != 0)
            return -1;
        if (s > cur)
            cur = s;
        if (secs <= e - cur)
            return cur + secs;
        secs -= e - cur;
        cur = e;
    }
}

int64_t lf_bizcal_add_days(const lf_bizcal_t *cal, int64_t t, int days) {
    int64_t t0 = lf_bizcal_next_open(cal, t);
    if (t0 < 0)
        return -1;
    int64_t local = t0 + lf_tz_offset(cal->tz, t0);
    int64_t day = s_floor_div(local, 86400), sec = local - day * 86400;
    for (int k = 0, guard = 0; k < days; guard++) {
        if (guard > S_HORIZON_DAYS)
            return -1;
        day++;
        if (s_working(cal, day))
            k++;
    }
    return lf_bizcal_next_open(cal, lf_tz_from_local(cal->tz, day * 86400 + sec));
}

int64_t lf_bizcal_seconds_between(const lf_bizcal_t *cal, int64_t a, int64_t b) {
    int64_t total = 0, s, e;
    while (a < b) {
        if (s_window(cal, a, &s, &e) != 0 || s >= b)
            break;
        if (s > a)
            a = s;
        total += (e < b ? e : b) - a;
        a = e;
    }
    return total;
}

int64_t lf_bizcal_day_start(const lf_bizcal_t *cal, int64_t t) {
    int64_t local = t + lf_tz_offset(cal->tz, t);
    return lf_tz_from_local(cal->tz, s_floor_div(local, 86400) * 86400);
}
