/* harness.c - see harness.h. */
#include "harness.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_NSVC 4
#define S_NINST 2

static const char *s_names[S_NSVC] = {"intake", "router", "scheduler", "analytics"};

struct lf_h {
    char dir[256]; /* private temp folder: config/, logs */
    char dbname[64];
    char db_url[256];
    char admin_url[256]; /* the "postgres" database, to create/drop ours */
    char prefix[128];    /* Redis key prefix */
    int pg_port, redis_port, http_port;
    int zmq_port[3]; /* intake, router, scheduler events */
    pid_t pids[S_NSVC][S_NINST];
    char *env[32]; /* extra NAME=value entries */
    int nenv;
    PGconn *conn;   /* the test's own connection */
    int orphans_ok; /* lf_h_allow_orphans: rows made up by the test itself */
};

/* The live harness of this test process, for lf_h_fini. */
static lf_h_t *s_current;

/* Free ports come from below the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default): a port the kernel
 * picked for us (bind to port 0) is released before the service binds it, and in between
 * any outgoing connection - a libpq or curl client, a ZeroMQ SUB reconnecting to a port
 * nothing listens on yet, which on loopback can even connect to itself - may be given
 * the same port, and the service then fails with "Address already in use". The kernel
 * never hands out a port below the range on its own, so only another test that chose
 * the same port can take it: the ports are chosen at random (seeded per process) and
 * checked with a bind, and lf_h_start starts a service again on new ports when it still
 * lost that race. */
static int s_ephemeral_low(void) {
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

static int s_port_bindable(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int s_free_port(void) {
    static unsigned seed;
    static pid_t seeded_by;
    if (seeded_by != getpid()) { /* Criterion forks a process per test */
        seeded_by = getpid();
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec;
    }
    int hi = s_ephemeral_low(); /* exclusive */
    int lo = hi - 12000 < 10000 ? 10000 : hi - 12000;
    cr_assert(hi > lo, "no room for test ports below the ephemeral range (%d)", hi);
    for (int attempt = 0; attempt < 1000; attempt++) {
        int port = lo + (int)(rand_r(&seed) % (unsigned)(hi - lo));
        if (s_port_bindable(port))
            return port;
    }
    cr_assert_fail("no free port in %d-%d", lo, hi - 1);
    return -1;
}

static void s_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int s_run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *s_bin(void) {
    const char *b = getenv("LF_TEST_BIN");
    return b ? b : "build/san/bin";
}

void lf_h_config(lf_h_t *self, const char *name, const char *content) {
    char path[512];
    snprintf(path, sizeof path, "%s/config/%s", self->dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(content, f);
    fclose(f);
}

void lf_h_env(lf_h_t *self, const char *name, const char *value) {
    cr_assert(self->nenv < 30);
    char *e = NULL;
    cr_assert(asprintf(&e, "%s=%s", name, value) > 0);
    self->env[self->nenv++] = e;
}

static PGresult *s_exec(lf_h_t *self, const char *sql) {
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        PQfinish(self->conn);
        self->conn = PQconnectdb(self->db_url);
    }
    return PQexec(self->conn, sql);
}

/* The service roles are NOLOGIN as the migration makes them; the test cluster trusts
 * loopback, so LOGIN is all they need. Roles are shared by every database of the
 * cluster, and tests running at once may race on the same ALTER ROLE: retried. */
static void s_roles_login(lf_h_t *self) {
    static const char *const roles[] = {"leadflow_intake", "leadflow_router",
                                        "leadflow_scheduler", "leadflow_analytics", NULL};
    for (int i = 0; roles[i]; i++) {
        char q[160];
        snprintf(q, sizeof q, "SELECT rolcanlogin FROM pg_roles WHERE rolname = '%s'",
                 roles[i]);
        for (int attempt = 0; attempt < 20; attempt++) {
            PGresult *r = s_exec(self, q);
            int can = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                      PQgetvalue(r, 0, 0)[0] == 't';
            PQclear(r);
            if (can)
                break;
            snprintf(q, sizeof q, "ALTER ROLE %s LOGIN", roles[i]);
            PQclear(s_exec(self, q));
            snprintf(q, sizeof q, "SELECT rolcanlogin FROM pg_roles WHERE rolname = '%s'",
                     roles[i]);
            s_sleep_ms(50);
        }
    }
}

lf_h_t *lf_h_new(int services, int seed) {
    const char *pg = getenv("LF_TEST_PG_PORT"), *rd = getenv("LF_TEST_REDIS_PORT");
    cr_assert(pg && rd,
              "LF_TEST_PG_PORT and LF_TEST_REDIS_PORT must be set (run make test)");
    lf_h_t *self = calloc(1, sizeof *self);
    self->pg_port = atoi(pg);
    self->redis_port = atoi(rd);
    snprintf(self->dir, sizeof self->dir, "/tmp/lf-test-XXXXXX");
    cr_assert(mkdtemp(self->dir), "mkdtemp: %s", strerror(errno));
    static int counter;
    snprintf(self->dbname, sizeof self->dbname, "t_%d_%d_%ld", (int)getpid(), counter++,
             (long)time(NULL) % 100000);
    snprintf(self->prefix, sizeof self->prefix, "lf:%s:", self->dbname);
    snprintf(self->admin_url, sizeof self->admin_url,
             "postgresql://leadflow@127.0.0.1:%d/postgres", self->pg_port);
    snprintf(self->db_url, sizeof self->db_url, "postgresql://leadflow@127.0.0.1:%d/%s",
             self->pg_port, self->dbname);
    PGconn *admin = PQconnectdb(self->admin_url);
    cr_assert(PQstatus(admin) == CONNECTION_OK, "cannot reach test PostgreSQL: %s",
              PQerrorMessage(admin));
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", self->dbname);
    PGresult *r = PQexec(admin, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(admin));
    PQclear(r);
    PQfinish(admin);

    /* Test databases share one PostgreSQL cluster, and the roles that migrations create
     * and grant are cluster-wide: two migrations at once (Criterion runs two tests in
     * parallel) can collide on the same role rows ("tuple concurrently updated"). The
     * migrator's advisory lock is per database, so the tests take a file lock. A failed
     * run's log goes to stderr, since the test folder is removed afterwards. */
    char cmd[1024];
    snprintf(
        cmd, sizeof cmd,
        "LEADFLOW_DATABASE_URL='%s' LEADFLOW_LOG_LEVEL=warn flock "
        "/tmp/leadflow-test-migrate.lock %s/leadflow-migrate >%s/migrate.log 2>&1 || "
        "{ cat %s/migrate.log >&2; false; }",
        self->db_url, s_bin(), self->dir, self->dir);
    cr_assert(s_run(cmd) == 0, "leadflow-migrate failed (see %s/migrate.log)", self->dir);
    s_roles_login(self);
    if (seed) {
        snprintf(cmd, sizeof cmd, "psql -q '%s' -f db/seed/demo_reps.sql >/dev/null",
                 self->db_url);
        cr_assert(s_run(cmd) == 0, "cannot load demo reps");
    }
    snprintf(
        cmd, sizeof cmd,
        "mkdir -p %s/config && cp config/*.json %s/config/ && cp -r config/calendars "
        "%s/config/",
        self->dir, self->dir, self->dir);
    cr_assert(s_run(cmd) == 0);
    /* Tests run at any hour: clocks count wall-clock time, and no team digest timer
     * joins the timers a test counts, unless a test writes its own keepalive.json
     * (test_keepalive tests business time and digests). */
    lf_h_config(self, "keepalive.json",
                "{\"clock\": \"wall\", \"digest\": {\"enabled\": false}}");
    self->http_port = s_free_port();
    for (int i = 0; i < 3; i++)
        self->zmq_port[i] = s_free_port();
    s_current = self;
    lf_h_start_all(self, services);
    return self;
}

void lf_h_start_all(lf_h_t *self, int services) {
    for (int s = 0; s < S_NSVC; s++)
        if (services & (1 << s))
            lf_h_start(self, 1 << s, 0);
}

static int s_index(int service) {
    for (int i = 0; i < S_NSVC; i++)
        if (service == (1 << i))
            return i;
    cr_assert_fail("bad service %d", service);
    return -1;
}

pid_t lf_h_pid(lf_h_t *self, int service, int instance) {
    return self->pids[s_index(service)][instance];
}

static int s_http_ready(lf_h_t *self) {
    char *body = NULL;
    const char *h[] = {"Authorization:", NULL};
    int st = lf_h_http(self, "GET", "/healthz", h, NULL, 0, &body);
    free(body);
    return st == 200;
}

/* Forks and execs one service with the test's environment, its output appended to
 * log. Returns its pid. */
static pid_t s_spawn(lf_h_t *self, int s, int instance, const char *log) {
    char bin[512];
    snprintf(bin, sizeof bin, "%s/leadflow-%s", s_bin(), s_names[s]);
    char *env[64];
    int n = 0;
    char buf[24][300];
#define S_ENV(...) (snprintf(buf[n], sizeof buf[n], __VA_ARGS__), env[n] = buf[n], n++)
    /* Each service logs in as its own role (db/migrations/0012_roles.sql), so a grant
     * missing from db/functions/99_grants.sql fails the tests. */
    S_ENV("LEADFLOW_DATABASE_URL=postgresql://leadflow_%s@127.0.0.1:%d/%s", s_names[s],
          self->pg_port, self->dbname);
    S_ENV("LEADFLOW_CONFIG_DIR=%s/config", self->dir);
    S_ENV("LEADFLOW_ADMIN_KEY=test-admin-key");
    S_ENV("LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1"); /* test-admin-key has 14 characters */
    S_ENV("LEADFLOW_INTAKE_PORT=%d", self->http_port);
    S_ENV("LEADFLOW_REDIS_PORT=%d", self->redis_port);
    S_ENV("LEADFLOW_REDIS_PREFIX=%s", self->prefix);
    S_ENV("LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:%d", self->zmq_port[0]);
    S_ENV("LEADFLOW_INTAKE_EVENTS=tcp://127.0.0.1:%d", self->zmq_port[0]);
    /* A second router instance cannot bind the same PUB port; it publishes on its
     * own, and the sweep covers consumers that do not hear it. */
    S_ENV("LEADFLOW_ROUTER_EVENTS_BIND=tcp://127.0.0.1:%d",
          instance ? s_free_port() : self->zmq_port[1]);
    S_ENV("LEADFLOW_ROUTER_EVENTS=tcp://127.0.0.1:%d", self->zmq_port[1]);
    S_ENV("LEADFLOW_SCHEDULER_EVENTS_BIND=tcp://127.0.0.1:%d",
          instance ? s_free_port() : self->zmq_port[2]);
    S_ENV("LEADFLOW_SCHEDULER_EVENTS=tcp://127.0.0.1:%d", self->zmq_port[2]);
    S_ENV("LEADFLOW_SWEEP_MS=300");
    S_ENV("LEADFLOW_LOG_LEVEL=info");
    /* Notification receivers in tests listen on loopback. */
    S_ENV("LEADFLOW_NOTIFY_ALLOW_PRIVATE=loopback");
    S_ENV("PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    /* Notification secrets are encrypted with this key, unless the test sets its own
     * (an empty value: none). */
    int own_key = 0;
    for (int i = 0; i < self->nenv; i++)
        own_key |= !strncmp(self->env[i], "LEADFLOW_SECRET_KEY=", 20);
    if (!own_key)
        S_ENV("LEADFLOW_SECRET_KEY=%s", LF_H_SECRET_KEY);
#undef S_ENV
    const char *pass[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TZ", NULL};
    char passbuf[4][512];
    int np = 0;
    for (int i = 0; pass[i]; i++) {
        const char *v = getenv(pass[i]);
        if (v && np < 4) {
            snprintf(passbuf[np], sizeof passbuf[np], "%s=%s", pass[i], v);
            env[n++] = passbuf[np++];
        }
    }
    for (int i = 0; i < self->nenv; i++)
        env[n++] = self->env[i];
    env[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* A test killed by its time-out (or by hand) takes its services with it, so they
         * do not linger, holding ports and connections, after the run. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        close(fd);
        char *argv[] = {bin, NULL};
        execve(bin, argv, env);
        _exit(127);
    }
    return pid;
}

/* The size of file path (0 when missing). */
static long s_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

long lf_h_file_count(const char *path, long from, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    fseek(f, from, SEEK_SET);
    char line[8192];
    long n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Does the log, from byte `from` on, hold `what`? */
static int s_log_has(const char *log, long from, const char *what) {
    return lf_h_file_count(log, from, what) > 0;
}

/* Did the service that wrote its log from `from` on exit because a port it binds was
 * taken (ZeroMQ's bind or libmicrohttpd's listen)? */
static int s_port_taken(const char *log, long from) {
    return s_log_has(log, from, "Address already in use") ||
           s_log_has(log, from, "cannot listen on HTTP");
}

/* New ports for what service s (instance 0) binds, after it lost one. A second
 * instance of the router or scheduler picks its own port at every start. */
static void s_new_ports(lf_h_t *self, int s, int instance) {
    if (s == 0) {
        self->http_port = s_free_port();
        self->zmq_port[0] = s_free_port();
    } else if (s < 3 && instance == 0) {
        self->zmq_port[s] = s_free_port();
    }
}

/* Starts the service and waits until it is ready. Returns 1, or 0 when it exited at
 * start because a port it binds was taken (the caller picks new ports and starts it
 * again); anything else fails the test. */
static int s_start_once(lf_h_t *self, int s, int instance, const char *log) {
    long from = s_file_size(log);
    pid_t pid = s_spawn(self, s, instance, log);
    int st = 0;
    if (s == 0) {
        for (int i = 0; i < 200 && !s_http_ready(self); i++) {
            if (waitpid(pid, &st, WNOHANG) == pid) {
                cr_assert(s_port_taken(log, from), "intake exited at start (see %s)",
                          log);
                return 0;
            }
            s_sleep_ms(50);
        }
        cr_assert(s_http_ready(self), "intake did not become healthy (see %s)", log);
        if (waitpid(pid, &st, WNOHANG) == pid) { /* another test's intake answered */
            cr_assert(s_port_taken(log, from), "intake exited at start (see %s)", log);
            return 0;
        }
    } else {
        /* Consumers say "ready" once their sockets are bound; the first sweep follows
         * at once: give them a moment (at least 300 ms, as always). */
        int waited = 0;
        for (; waited < 10000 && !s_log_has(log, from, ": ready"); waited += 20) {
            if (waitpid(pid, &st, WNOHANG) == pid) {
                cr_assert(s_port_taken(log, from), "%s exited at start (see %s)",
                          s_names[s], log);
                return 0;
            }
            s_sleep_ms(20);
        }
        if (waited < 300)
            s_sleep_ms(300 - waited);
        cr_assert(waitpid(pid, &st, WNOHANG) == 0, "%s exited at start (see %s)",
                  s_names[s], log);
    }
    self->pids[s][instance] = pid;
    return 1;
}

void lf_h_start(lf_h_t *self, int service, int instance) {
    int s = s_index(service);
    cr_assert(self->pids[s][instance] == 0, "%s/%d already running", s_names[s],
              instance);
    char log[512];
    snprintf(log, sizeof log, "%s/%s.%d.log", self->dir, s_names[s], instance);
    for (int attempt = 1; attempt <= 5; attempt++) {
        if (s_start_once(self, s, instance, log))
            return;
        fprintf(stderr,
                "harness: %s/%d lost a port it binds to another process (attempt %d), "
                "starting it again on new ports\n",
                s_names[s], instance, attempt);
        s_new_ports(self, s, instance);
    }
    cr_assert_fail("%s/%d found its ports taken 5 times (see %s)", s_names[s], instance,
                   log);
}

void lf_h_stop(lf_h_t *self, int service, int instance, int kill9) {
    int s = s_index(service);
    pid_t pid = self->pids[s][instance];
    if (!pid)
        return;
    kill(pid, kill9 ? SIGKILL : SIGTERM);
    int st = 0;
    int waited = 0;
    while (waitpid(pid, &st, WNOHANG) == 0 && waited < 20000) {
        s_sleep_ms(20);
        waited += 20;
    }
    if (waited >= 20000) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        cr_assert_fail("%s did not stop within 20 s of SIGTERM", s_names[s]);
    }
    self->pids[s][instance] = 0;
    if (!kill9) {
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            lf_h_dump_logs(self);
        cr_expect(
            WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "%s/%d did not exit cleanly (status %d): a crash or sanitizer report, see "
            "%s/%s.%d.log",
            s_names[s], instance, st, self->dir, s_names[s], instance);
    }
}

void lf_h_dump_logs(lf_h_t *self) {
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "for f in %s/*.log; do echo \"== $f\"; tail -n 30 \"$f\"; done >&2",
             self->dir);
    s_run(cmd);
}

void lf_h_fini(void) {
    if (!s_current)
        return;
    lf_h_dump_logs(s_current);
    setenv("LF_TEST_KEEP", "1", 1); /* keep the logs of a failed test */
    lf_h_destroy(&s_current);
}

void lf_h_allow_orphans(lf_h_t *self) {
    self->orphans_ok = 1;
}

/* No foreign key guards the rows the services append (migration 0040): after the
 * workload, every link between rows must still hold (db/functions/95_lf_orphans.sql).
 * A database without lf_orphans() (a migration test stopped half-way) is not
 * checked. */
static void s_check_orphans(lf_h_t *self) {
    if (self->orphans_ok)
        return;
    PGresult *r = s_exec(self, "SELECT to_regprocedure('lf_orphans()') IS NOT NULL");
    int has = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) &&
              PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!has)
        return;
    r = s_exec(self, "SELECT coalesce(string_agg(link || ': ' || orphans, ', '), '')"
                     " FROM lf_orphans() WHERE orphans > 0");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        cr_expect(0, "lf_orphans() failed: %s", PQerrorMessage(self->conn));
    } else {
        const char *bad = PQgetvalue(r, 0, 0);
        cr_expect_str_empty(bad, "rows that point at nothing after the test: %s", bad);
    }
    PQclear(r);
}

void lf_h_destroy(lf_h_t **self_p) {
    lf_h_t *self = *self_p;
    if (!self)
        return;
    if (self == s_current)
        s_current = NULL;
    for (int s = 0; s < S_NSVC; s++)
        for (int i = 0; i < S_NINST; i++)
            lf_h_stop(self, 1 << s, i, 0);
    s_check_orphans(self);
    PQfinish(self->conn);
    PGconn *admin = PQconnectdb(self->admin_url);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", self->dbname);
    PQclear(PQexec(admin, sql));
    PQfinish(admin);
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "redis-cli -p %d --scan --pattern '%s*' | xargs -r redis-cli -p %d del "
             ">/dev/null",
             self->redis_port, self->prefix, self->redis_port);
    s_run(cmd);
    if (!getenv("LF_TEST_KEEP")) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", self->dir);
        s_run(cmd);
    }
    for (int i = 0; i < self->nenv; i++)
        free(self->env[i]);
    free(self);
    *self_p = NULL;
}

typedef struct {
    char *data;
    size_t len;
} s_buf_t;

static size_t s_collect(char *p, size_t size, size_t n, void *arg) {
    s_buf_t *b = arg;
    size_t add = size * n;
    b->data = realloc(b->data, b->len + add + 1);
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

int lf_h_http(lf_h_t *self, const char *method, const char *path,
              const char *const *headers, const char *req_body, size_t req_len,
              char **body) {
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", self->http_port, path);
    struct curl_slist *h = NULL;
    int auth = 0;
    for (const char *const *p = headers; p && *p; p++) {
        if (strncasecmp(*p, "Authorization:", 14) == 0) {
            auth = 1;
            if (strlen(*p) <= 15)
                continue; /* "Authorization:" alone: send no key */
        }
        h = curl_slist_append(h, *p);
    }
    if (!auth)
        h = curl_slist_append(h, "Authorization: Bearer test-admin-key");
    h = curl_slist_append(h, "Expect:");
    s_buf_t b = {calloc(1, 1), 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (req_body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req_body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req_len);
    }
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (body)
        *body = b.data;
    else
        free(b.data);
    return (int)status;
}

int lf_h_post_json(lf_h_t *self, const char *path, const char *json, json_t **out) {
    const char *h[] = {"Content-Type: application/json", NULL};
    char *body = NULL;
    int st = lf_h_http(self, "POST", path, h, json, strlen(json), &body);
    if (out)
        *out = json_loads(body, 0, NULL);
    free(body);
    return st;
}

int lf_h_get_json(lf_h_t *self, const char *path, json_t **out) {
    char *body = NULL;
    int st = lf_h_http(self, "GET", path, NULL, NULL, 0, &body);
    if (out)
        *out = json_loads(body, 0, NULL);
    free(body);
    return st;
}

char *lf_h_sql(lf_h_t *self, const char *sql) {
    PGresult *r = s_exec(self, sql);
    char *out = NULL;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK)
        out = strdup(PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    else if (st == PGRES_COMMAND_OK)
        out = strdup(PQcmdTuples(r));
    else
        fprintf(stderr, "SQL failed: %s: %s\n", sql, PQerrorMessage(self->conn));
    PQclear(r);
    return out;
}

long lf_h_sql_long(lf_h_t *self, const char *sql) {
    char *v = lf_h_sql(self, sql);
    long n = (v && *v) ? strtol(v, NULL, 10) : -1;
    free(v);
    return n;
}

int lf_h_wait_sql(lf_h_t *self, const char *sql, const char *expect, int timeout_ms) {
    for (int waited = 0;; waited += 50) {
        char *v = lf_h_sql(self, sql);
        int ok = v && strcmp(v, expect) == 0;
        free(v);
        if (ok)
            return 1;
        if (waited >= timeout_ms)
            return 0;
        s_sleep_ms(50);
    }
}

int lf_h_zmq_port(const lf_h_t *self, int service) {
    int s = s_index(service);
    cr_assert(s < 3, "%s publishes no events", s_names[s]);
    return self->zmq_port[s];
}

const char *lf_h_admin_key(const lf_h_t *self) {
    (void)self;
    return "test-admin-key";
}
const char *lf_h_db_url(const lf_h_t *self) {
    return self->db_url;
}
int lf_h_http_port(const lf_h_t *self) {
    return self->http_port;
}
int lf_h_redis_port(const lf_h_t *self) {
    return self->redis_port;
}
const char *lf_h_redis_prefix(const lf_h_t *self) {
    return self->prefix;
}
const char *lf_h_dir(const lf_h_t *self) {
    return self->dir;
}

void lf_h_pg_stop(lf_h_t *self) {
    const char *dir = getenv("LF_TEST_PG_DIR");
    cr_assert(dir, "LF_TEST_PG_DIR is not set: this test needs a PostgreSQL of its own");
    PQfinish(self->conn);
    self->conn = NULL;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash -c '. scripts/lib.sh && lf_pg_stop %s'", dir);
    cr_assert(s_run(cmd) == 0, "cannot stop PostgreSQL");
}

void lf_h_pg_start(lf_h_t *self) {
    const char *dir = getenv("LF_TEST_PG_DIR");
    cr_assert(dir, "LF_TEST_PG_DIR is not set");
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "bash -c '. scripts/lib.sh && lf_pg_start %s %d' >/dev/null", dir,
             self->pg_port);
    cr_assert(s_run(cmd) == 0, "cannot start PostgreSQL");
}

void lf_h_use_redis(lf_h_t *self, int port) {
    self->redis_port = port;
}

int lf_h_free_port(void) {
    return s_free_port();
}
