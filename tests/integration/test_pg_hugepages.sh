#!/usr/bin/env bash
# tests/integration/test_pg_hugepages.sh : PostgreSQL's shared memory in huge pages
# (scripts/lib.sh, lf_pg_hugepages), as `make run`, `make test` and the benchmarks start it.
#
# Run as root (make test is, in CI): a server started with lf_pg_start maps its shared
# memory in huge pages, with the pool made large enough for it when it was not; lf_pg_stop
# gives back exactly what was added; LEADFLOW_PG_HUGEPAGES=0 leaves the pool alone and the
# server on ordinary pages; a damaged record of what was added is ignored, not obeyed.
# Root with the pool read-only (some containers): the server starts without it.
# Not root (the pool is the kernel's, only root changes it): the server starts either on
# huge pages the pool already had free, or on ordinary pages with the exact sysctl line
# printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
WORK=$(mktemp -d /tmp/leadflow-hugepages.XXXXXX)
chmod 755 "$WORK"
POOL0=$(cat /proc/sys/vm/nr_hugepages)
cleanup() {
    lf_pg_stop "$WORK/a"
    lf_pg_stop "$WORK/b"
    if [ "$(id -u)" -eq 0 ]; then { echo "$POOL0" >/proc/sys/vm/nr_hugepages; } 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL $*" >&2; exit 1; }
pool() { cat /proc/sys/vm/nr_hugepages; }
# Does the postmaster of DIR map its shared memory in huge pages?
huge_mapped() { grep -q 'anon_hugepage' "/proc/$(head -1 "$1/data/postmaster.pid")/maps"; }

if [ "$(id -u)" -ne 0 ]; then
    lf_pg_start "$WORK/a" "$(lf_free_port)" 2>"$WORK/start.err"
    if huge_mapped "$WORK/a"; then
        echo "not root: the server took huge pages the pool had free"
    else
        grep -q 'sudo sysctl -w vm.nr_hugepages=[0-9]' "$WORK/start.err" ||
            fail "on ordinary pages with no sysctl line printed: $(cat "$WORK/start.err")"
        echo "not root: ordinary pages, and the line to run: $(grep sysctl "$WORK/start.err")"
    fi
    [ "$(pool)" = "$POOL0" ] || fail "not root, yet the pool moved"
    echo "PASS"
    exit 0
fi
if ! { echo "$POOL0" >/proc/sys/vm/nr_hugepages; } 2>/dev/null; then
    # A container may show the pool read-only even to root: the server must still start.
    lf_pg_start "$WORK/a" "$(lf_free_port)" || fail "the server did not start with the pool read-only"
    [ "$(pool)" = "$POOL0" ] || fail "the pool moved though it is read-only"
    echo "the pool is read-only here: the server started without it; PASS"
    exit 0
fi

# 1. The pool holds nothing free: lf_pg_start grows it by what the server needs.
unset LEADFLOW_PG_HUGEPAGES
echo $((POOL0 - $(lf_hugepages_avail))) >/proc/sys/vm/nr_hugepages # no free page left
base=$(pool)
lf_pg_start "$WORK/a" "$(lf_free_port)"
huge_mapped "$WORK/a" || fail "the server did not map its shared memory in huge pages (pool $(pool))"
added=$(cat "$WORK/a/hugepages" 2>/dev/null || echo none)
[ "$added" = $(($(pool) - base)) ] && [ "$added" -gt 0 ] ||
    fail "pool $base -> $(pool), recorded as added: $added"
echo "a server on huge pages: the pool grew from $base to $(pool) ($added pages)"

# 2. Stopped, it gives them back: the pool is as it was.
lf_pg_stop "$WORK/a"
[ "$(pool)" = "$base" ] || fail "after the stop the pool is $(pool), not $base"
[ ! -e "$WORK/a/hugepages" ] || fail "the record of added pages outlived the stop"
echo "stopped: the pool is back to $base"

# 3. Started again with the pool's pages still free (another server just stopped):
#    reused, nothing added.
echo $((base + added)) >/proc/sys/vm/nr_hugepages
lf_pg_start "$WORK/a" "$(lf_free_port)"
huge_mapped "$WORK/a" || fail "restarted with free huge pages, the server did not use them"
[ ! -e "$WORK/a/hugepages" ] || fail "pages were added though $added were free"
lf_pg_stop "$WORK/a"
[ "$(pool)" = $((base + added)) ] || fail "a stop gave back pages it never added: pool $(pool)"
echo $base >/proc/sys/vm/nr_hugepages
echo "restarted on the free pages: none added, none taken away"

# 4. LEADFLOW_PG_HUGEPAGES=0: the pool is left alone, the server runs on ordinary pages.
LEADFLOW_PG_HUGEPAGES=0 lf_pg_start "$WORK/b" "$(lf_free_port)"
[ "$(pool)" = "$base" ] || fail "LEADFLOW_PG_HUGEPAGES=0 changed the pool: $base -> $(pool)"
! huge_mapped "$WORK/b" || fail "with no free huge page the server still mapped some"
LEADFLOW_PG_HUGEPAGES=0 lf_pg_stop "$WORK/b"
echo "LEADFLOW_PG_HUGEPAGES=0: pool untouched, ordinary pages"

# 5. A damaged record of added pages is not obeyed: the pool stays.
for junk in "-5" "12abc" "" "99999999999999999999999"; do
    printf '%s' "$junk" >"$WORK/b/hugepages"
    lf_pg_hugepages_return "$WORK/b"
    [ "$(pool)" = "$base" ] || fail "record '$junk' moved the pool to $(pool)"
done
echo "damaged records ignored"
echo "PASS"
