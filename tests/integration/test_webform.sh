#!/usr/bin/env bash
# tests/integration/test_webform.sh : the example web form in a real browser.
#
# Serves examples/webform.html from its own origin, runs the real leadflow-intake on a
# fresh database with a public web_form key for that origin, lets headless Chromium
# type into the form and click submit like a person (webform_cdp.py, DevTools
# protocol), and checks that PostgreSQL holds the lead with its Chinese name intact.
# The page posts with fetch() and an Authorization header, so the CORS preflight is
# exercised for real.
#
# Needs LF_TEST_PG_PORT (a running PostgreSQL with role leadflow, as make test starts)
# and LF_TEST_BIN; exits 77 when chromium is not installed, which make test counts as a
# failure (chromium is one of the packages it installs).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
command -v chromium >/dev/null || { echo "SKIP chromium not installed"; exit 77; }
: "${LF_TEST_PG_PORT:?set LF_TEST_PG_PORT (make test does)}"
BIN=${LF_TEST_BIN:-build/san/bin}
WORK=$(mktemp -d /tmp/leadflow-webform.XXXXXX)
DB=lf_webform_$$
PSQL="psql -X -q -At -h 127.0.0.1 -p $LF_TEST_PG_PORT -U leadflow"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    $PSQL -d leadflow -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL $*" >&2; [ -f "$WORK/intake.log" ] && tail -n 30 "$WORK/intake.log" >&2; exit 1; }

$PSQL -d leadflow -c "CREATE DATABASE $DB" >/dev/null
export LEADFLOW_DATABASE_URL="postgresql://leadflow@127.0.0.1:$LF_TEST_PG_PORT/$DB"
"$BIN/leadflow-migrate" >/dev/null 2>&1 || fail "migrations"

HTTP_PORT=$(lf_free_port); PAGE_PORT=$(lf_free_port); CDP_PORT=$(lf_free_port)
ZMQ_PORT=$(lf_free_port)
ORIGIN="http://127.0.0.1:$PAGE_PORT"
KEY=$("$BIN/leadflow-keys" create --channel web_form --origin "$ORIGIN" --rate 60 2>/dev/null |
    sed -n 's/^key: //p')
[ -n "$KEY" ] || fail "leadflow-keys create printed no key"

LEADFLOW_INTAKE_PORT=$HTTP_PORT LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:$ZMQ_PORT \
    LEADFLOW_CONFIG_DIR=config LEADFLOW_ADMIN_KEY=webform-test-admin \
    "$BIN/leadflow-intake" >"$WORK/intake.log" 2>&1 &
intake_pid=$!
pids+=("$intake_pid")
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null || fail "intake did not start"

# The page as a site would publish it: its endpoint and public key filled in.
mkdir -p "$WORK/site" "$WORK/chrome"
sed -e "s|http://127.0.0.1:8080|http://127.0.0.1:$HTTP_PORT|g" -e "s|PUBLIC_WEB_FORM_KEY|$KEY|g" \
    examples/webform.html >"$WORK/site/index.html"
python3 -m http.server "$PAGE_PORT" --bind 127.0.0.1 --directory "$WORK/site" \
    >"$WORK/site.log" 2>&1 &
pids+=($!)

chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$WORK/chrome" \
    --remote-debugging-address=127.0.0.1 --remote-debugging-port="$CDP_PORT" about:blank \
    >"$WORK/chrome.log" 2>&1 &
pids+=($!)

LEAD=$(python3 tests/integration/webform_cdp.py "$CDP_PORT" "$ORIGIN/index.html") ||
    fail "the browser could not submit the form"
ROW=$($PSQL -d "$DB" -c "SELECT channel || '|' || name || '|' || phone || '|' || company ||
    '|' || budget_min::bigint || '|' || source || '|' || phone_type || '|' || company_key
    FROM leads WHERE id = '$LEAD'")
WANT="web_form|王芳|+8613800138000|华东医疗器械有限公司|500000|website-contact|mobile|华东医疗器械"
[ "$ROW" = "$WANT" ] || fail "stored lead is '$ROW', expected '$WANT'"
N=$($PSQL -d "$DB" -c "SELECT count(*) FROM leads")
[ "$N" = 1 ] || fail "$N leads stored, expected 1"

kill -TERM "$intake_pid"
wait "$intake_pid" || fail "intake did not exit cleanly (status $?)"
pids=("${pids[@]:1}")
echo "PASS webform: lead $LEAD stored as $ROW"
