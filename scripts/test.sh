#!/usr/bin/env bash
# make test: installs what is missing (as root), builds with ASan+UBSan and
# -Werror, starts a private PostgreSQL and Redis on free loopback ports, runs the
# Criterion unit tests, the service/end-to-end tests against the real binaries, the
# fault tests, a short fuzz run and the compose check, then cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

lf_need_pkgs $LF_BUILD_PKGS $LF_RUN_PKGS $LF_TEST_PKGS python3

JOBS=$(nproc 2>/dev/null || echo 2)
lf_say "building (ASan+UBSan, -Werror)"
make -s -j"$JOBS" SANITIZE=1 WERROR=1 all >/dev/null
make -s -j"$JOBS" WERROR=1 bins >/dev/null

WORK=$(mktemp -d /tmp/leadflow-test.XXXXXX)
chmod 755 "$WORK"
PG_PORT=$(lf_free_port); REDIS_PORT=$(lf_free_port)
FAULT_PG_PORT=$(lf_free_port)
cleanup() {
    lf_pg_stop "$WORK/pg"
    lf_pg_stop "$WORK/pg-fault"
    lf_redis_stop "$WORK/redis" "$REDIS_PORT"
    rm -rf "$WORK"
}
trap cleanup EXIT
lf_say "starting PostgreSQL on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT"
lf_pg_start "$WORK/pg" "$PG_PORT"
lf_redis_start "$WORK/redis" "$REDIS_PORT"

export LF_TEST_PG_PORT=$PG_PORT LF_TEST_REDIS_PORT=$REDIS_PORT LF_TEST_BIN=build/san/bin
# PostgreSQL's own log, which test_privacy searches for personal data.
export LF_TEST_PG_LOG=$WORK/pg/postgres.log
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export CRITERION_NO_EARLY_EXIT=1
export PGCONNECT_TIMEOUT=5

# Counts are individual tests: Criterion's synthesis line of each suite, plus one
# for each check that is not a Criterion suite (compose, fuzz).
passed=0; failed=0; failed_names=()
run_suite() {
    local bin=$1; shift
    local name; name=$(basename "$bin")
    local log="$WORK/$name.out" rc=0
    "$bin" "$@" >"$log" 2>&1 || rc=$?
    local syn; syn=$(grep -o 'Tested: [0-9]*.*' "$log" | tail -1 || true)
    local p f c
    p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$syn"); p=${p:-0}
    f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$syn"); f=${f:-0}
    c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$syn"); c=${c:-0}
    passed=$((passed + p)); failed=$((failed + f + c))
    if [ "$rc" -ne 0 ] || [ -z "$syn" ] || [ $((f + c)) -ne 0 ]; then
        [ $((f + c)) -eq 0 ] && failed=$((failed + 1))
        failed_names+=("$name")
        lf_say "FAIL $name (exit $rc) $syn"
        tail -n 80 "$log" >&2
    else
        lf_say "PASS $name $syn"
    fi
}

for t in build/san/tests/unit/test_*; do
    run_suite "$t" --jobs 2
done

# Fault tests restart their PostgreSQL, so they get one of their own.
lf_pg_start "$WORK/pg-fault" "$FAULT_PG_PORT"
for t in build/san/tests/integration/test_*; do
    case "$t" in
    *test_faults*)
        LF_TEST_PG_PORT=$FAULT_PG_PORT LF_TEST_PG_DIR="$WORK/pg-fault" run_suite "$t" --jobs 1 ;;
    *) run_suite "$t" --jobs 2 ;;
    esac
done

# The example web form in headless Chromium (tests/integration/test_webform.sh).
# Chromium is one of LF_TEST_PKGS, so it is there; a browser test that cannot run is a
# failure, never a skip.
if command -v chromium >/dev/null &&
    bash tests/integration/test_webform.sh >"$WORK/webform.out" 2>&1; then
    passed=$((passed + 1)); lf_say "PASS webform in headless Chromium"
else
    failed=$((failed + 1)); failed_names+=("webform")
    command -v chromium >/dev/null || lf_say "FAIL webform: chromium is not installed (apt-get install chromium)"
    tail -n 40 "$WORK/webform.out" >&2 2>/dev/null || true
fi

# The README's `make run` (scripts/run.sh) as a user runs it: its own PostgreSQL, Redis
# and ports; supervisor restarts with back-off; SIGTERM stops everything.
if bash tests/integration/test_make_run.sh >"$WORK/makerun.out" 2>&1; then
    passed=$((passed + 1)); lf_say "PASS make run (supervisor, restart back-off, stop)"
else
    failed=$((failed + 1)); failed_names+=("make run"); tail -n 40 "$WORK/makerun.out" >&2
fi

# PostgreSQL's shared memory in huge pages (scripts/lib.sh, lf_pg_hugepages): the pool
# grown for a server and given back at its stop, LEADFLOW_PG_HUGEPAGES=0 obeyed.
if bash tests/integration/test_pg_hugepages.sh >"$WORK/hugepages.out" 2>&1; then
    passed=$((passed + 1)); lf_say "PASS PostgreSQL on huge pages (pool grown, given back)"
else
    failed=$((failed + 1)); failed_names+=("pg hugepages"); tail -n 20 "$WORK/hugepages.out" >&2
fi

# Compose file: no engine runs here, but the file must be valid.
if command -v docker-compose >/dev/null; then
    if LEADFLOW_ADMIN_KEY=compose-check docker-compose -f docker-compose.yml config -q; then
        passed=$((passed + 1)); lf_say "PASS docker-compose config"
    else
        failed=$((failed + 1)); failed_names+=("docker-compose config")
    fi
fi

# The OpenAPI description must stay valid as endpoints are added. The validator
# comes from the npm registry (npm comes with the machine's Node.js); when it
# cannot be installed, that is a failure, not a skip.
if ! command -v npm >/dev/null; then
    failed=$((failed + 1)); failed_names+=("openapi (npm missing)")
else
    tools=build/npm-tools
    if [ -x "$tools/node_modules/.bin/swagger-cli" ] ||
        (mkdir -p "$tools" && cd "$tools" && timeout 180 npm install --silent --no-audit \
            --no-fund @apidevtools/swagger-cli@4 >/dev/null 2>&1); then
        if "$tools/node_modules/.bin/swagger-cli" validate docs/openapi.yaml >"$WORK/openapi.out" 2>&1; then
            passed=$((passed + 1)); lf_say "PASS docs/openapi.yaml is valid OpenAPI"
        else
            failed=$((failed + 1)); failed_names+=("openapi"); cat "$WORK/openapi.out" >&2
        fi
    else
        failed=$((failed + 1)); failed_names+=("openapi (swagger-cli not installed)")
        lf_say "FAIL OpenAPI validation: swagger-cli could not be installed from npm"
    fi
fi

# A short libFuzzer run over the parsers and normalizers (longer runs: fuzz/README.md).
if ! command -v clang >/dev/null; then
    failed=$((failed + 1)); failed_names+=("fuzz (clang missing)")
else
    if bash scripts/fuzz.sh 15 >"$WORK/fuzz.out" 2>&1; then
        passed=$((passed + 1)); lf_say "PASS fuzz (15 s per target)"
    else
        failed=$((failed + 1)); failed_names+=("fuzz"); tail -n 40 "$WORK/fuzz.out" >&2
    fi
fi

echo
[ $failed -eq 0 ] || lf_say "failed: ${failed_names[*]}"
echo "tests: $passed passed, $failed failed"
[ $failed -eq 0 ]
