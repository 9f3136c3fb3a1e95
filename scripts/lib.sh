# scripts/lib.sh - shared shell helpers for make run, make test and CI.
# Sourced, not executed. Everything here works on a fresh Debian 12 machine.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# Debian packages needed to build, run and test leadflow.
LF_BUILD_PKGS="build-essential pkg-config libzmq3-dev libpq-dev libjansson-dev libhiredis-dev \
libmicrohttpd-dev libcurl4-openssl-dev libunistring-dev libcsv-dev libssl-dev libsodium-dev uuid-dev \
libphonenumber-dev libicu-dev libzip-dev libexpat1-dev zlib1g-dev libjsmn-dev"
LF_RUN_PKGS="postgresql redis-server curl"
LF_TEST_PKGS="libcriterion-dev docker-compose clang chromium"
# and to benchmark it (make bench): wrk, and Node.js with npm for BullMQ, the
# scheduler's reference (lf_bench_pkgs below)
LF_BENCH_PKGS="wrk"

lf_say() { printf '%s\n' "leadflow: $*" >&2; }

# lf_need_pkgs PKG... : installs what is missing when root, otherwise prints the
# exact apt-get line and fails.
lf_need_pkgs() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        lf_say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null || { lf_say "apt-get update failed"; return 1; }
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
            { lf_say "apt-get install failed"; return 1; }
        # Debian's postgresql package starts a cluster on 5432; leadflow runs its own.
        return 0
    fi
    lf_say "missing packages; run as root:"
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    return 1
}

# lf_bench_pkgs: what make bench and the benchmarks that run wrk need, installed as
# lf_need_pkgs does. Node.js may come from elsewhere than Debian (NodeSource's package
# carries npm): only when npm is missing are Debian's nodejs and npm asked for.
lf_bench_pkgs() {
    local pkgs="$LF_BENCH_PKGS"
    command -v npm >/dev/null || pkgs="$pkgs nodejs npm"
    lf_need_pkgs $pkgs
}

# Runs a command as the postgres user when we are root (initdb and postgres refuse
# to run as root), as ourselves otherwise.
lf_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# lf_pg_start DIR PORT : initialises (first time) and starts PostgreSQL on
# 127.0.0.1:PORT with data in DIR/data and its log in DIR/postgres.log; creates the
# role and database "leadflow". DIR is handed to the postgres user when we are root.
# The server log is terse (no DETAIL, HINT or CONTEXT, which quote the failing row:
# a unique violation's DETAIL names the phone or e-mail), on every start.
lf_pg_start() {
    local dir=$1 port=$2 data=$1/data
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; chmod 700 "$dir"; fi
    if [ ! -f "$data/PG_VERSION" ]; then
        lf_as_pg "$PG_BIN/initdb" -D "$data" -U leadflow --auth=trust -E UTF8 \
            --locale=C.UTF-8 >/dev/null 2>"$dir/initdb.err" ||
            { cat "$dir/initdb.err" >&2; return 1; }
        lf_as_pg tee -a "$data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
max_connections = 200
shared_buffers = 256MB
wal_buffers = 16MB
checkpoint_timeout = 15min
max_wal_size = 2GB
CONF
    fi
    lf_pg_hugepages "$dir"
    lf_as_pg "$PG_BIN/pg_ctl" -D "$data" -o "-p $port -c log_error_verbosity=terse" \
        -l "$dir/postgres.log" -w -t 60 \
        start >/dev/null || { tail -20 "$dir/postgres.log" >&2; return 1; }
    "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U leadflow -d postgres -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = 'leadflow'" | grep -q 1 ||
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U leadflow leadflow
}

lf_pg_stop() {
    local data=$1/data
    [ -f "$data/postmaster.pid" ] || return 0
    lf_as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    lf_pg_hugepages_return "$1"
}

# Huge pages. PostgreSQL asks the kernel for its shared memory (shared buffers, WAL
# buffers) in pages of 2 MiB when the kernel's pool has enough of them free
# (huge_pages = try, its default), in pages of 4 KiB otherwise. With 4 KiB pages
# every backend faults each page of shared memory it touches for the first time into
# its own page table, and on a virtual machine a fault is dear: with the pool large
# enough the whole stack spent 12-39% less CPU per lead, the most right after a start
# (docs/operations.md, docs/benchmarks.md "The morning of 2026-12-03"). The pool is
# the machine's, not PostgreSQL's: vm.nr_hugepages.
#
# lf_pg_hugepages DIR : before the PostgreSQL of DIR/data starts, makes the pool large
# enough for it when we are root (the pages it adds are written to DIR/hugepages, and
# lf_pg_stop gives them back); otherwise, or when the kernel will not, PostgreSQL
# starts on ordinary pages as before. LEADFLOW_PG_HUGEPAGES=0 leaves the pool alone.
lf_pg_hugepages() {
    local dir=$1 need total avail want got
    [ "${LEADFLOW_PG_HUGEPAGES:-1}" != 0 ] || return 0
    [ -r /proc/sys/vm/nr_hugepages ] || return 0
    # What this server's settings need, in huge pages (PostgreSQL 15; -1: none).
    need=$(lf_as_pg "$PG_BIN/postgres" -D "$dir/data" -C shared_memory_size_in_huge_pages \
           2>/dev/null) || return 0
    [[ "$need" =~ ^[0-9]+$ ]] && [ "$need" -gt 0 ] || return 0
    total=$(cat /proc/sys/vm/nr_hugepages)
    avail=$(lf_hugepages_avail)
    [ "$avail" -ge "$need" ] && return 0
    want=$((total + need - avail))
    if [ "$(id -u)" -ne 0 ]; then
        lf_say "PostgreSQL on ordinary pages: $need huge pages would spare it CPU; as root:"
        echo "  sudo sysctl -w vm.nr_hugepages=$want" >&2
        return 0
    fi
    { echo "$want" >/proc/sys/vm/nr_hugepages; } 2>/dev/null || return 0
    got=$(cat /proc/sys/vm/nr_hugepages)
    [ "$got" -gt "$total" ] || return 0
    echo $((got - total + $(lf_pg_hugepages_added "$dir"))) >"$dir/hugepages"
}

# lf_hugepages_avail : huge pages of the pool that nobody holds or has claimed
# (free, less those a running server reserved and has not touched yet).
lf_hugepages_avail() {
    awk '/^HugePages_Free:/ {f = $2} /^HugePages_Rsvd:/ {r = $2} END {print f - r}' /proc/meminfo
}

# lf_pg_hugepages_added DIR : the pages recorded as added for DIR (0 when none, or
# when the record is not a plain count).
lf_pg_hugepages_added() {
    local n
    n=$(cat "$1/hugepages" 2>/dev/null || true)
    [[ "$n" =~ ^[0-9]{1,7}$ ]] && echo $((10#$n)) || echo 0
}

# lf_pg_hugepages_return DIR : gives back to the machine the huge pages lf_pg_hugepages
# added for DIR (its server stopped: they are free, unless another server took them).
lf_pg_hugepages_return() {
    local dir=$1 added total
    [ -f "$dir/hugepages" ] && [ "$(id -u)" -eq 0 ] || return 0
    added=$(lf_pg_hugepages_added "$dir"); rm -f "$dir/hugepages"
    [ "$added" -gt 0 ] || return 0
    total=$(cat /proc/sys/vm/nr_hugepages)
    { echo $((total > added ? total - added : 0)) >/proc/sys/vm/nr_hugepages; } 2>/dev/null || true
}

# lf_redis_start DIR PORT : starts redis-server on 127.0.0.1:PORT, AOF on, data in DIR.
lf_redis_start() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --appendonly yes \
        --save '' >/dev/null || return 1
    for _ in $(seq 1 50); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
    done
    lf_say "redis did not start on port $port"; return 1
}

lf_redis_stop() {
    local dir=$1 port=$2
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
        [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null || return 0
        sleep 0.1
    done
}

# lf_free_port : prints a TCP port that nothing listens on now.
lf_free_port() {
    python3 - 2>/dev/null <<'PY' || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}
