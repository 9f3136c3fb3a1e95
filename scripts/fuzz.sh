#!/usr/bin/env bash
# scripts/fuzz.sh SECONDS : builds every fuzz/fuzz_*.c with libFuzzer and runs each
# for SECONDS (default 60). Non-zero exit when a target crashes or leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
out=build/fuzz
mkdir -p "$out"
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Icommon/include -Iservices/intake $(pkg-config --cflags jansson)"
LIBS="$(pkg-config --libs jansson) -lunistring -lcsv"
for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    case $name in
    fuzz_normalize) extra="common/normalize.c" ;;
    fuzz_parsers) extra="services/intake/parse.c services/intake/csv_import.c services/intake/mapping.c common/normalize.c" ;;
    *) extra="" ;;
    esac
    clang $CFLAGS "$src" $extra $LIBS -o "$out/$name"
    mkdir -p "$out/corpus-$name"
    echo "fuzzing $name for $secs s"
    "$out/$name" -max_total_time="$secs" -max_len=4096 -timeout=10 \
        -artifact_prefix="$out/$name-" "$out/corpus-$name" 2>"$out/$name.log" ||
        { tail -n 40 "$out/$name.log"; exit 1; }
    tail -n 1 "$out/$name.log"
done
