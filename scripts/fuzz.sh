#!/usr/bin/env bash
# scripts/fuzz.sh SECONDS : builds every fuzz/fuzz_*.c with libFuzzer and runs each
# for SECONDS (default 60). Non-zero exit when a target crashes or leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
out=build/fuzz
mkdir -p "$out"
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Icommon/include -Iservices/intake $(pkg-config --cflags jansson icu-uc libzip expat libpq)"
# The phone shim is C++ (libphonenumber); it is compiled once with the sanitizers and
# linked into the targets that judge phone numbers, as the Makefile links it.
LIBS="$(pkg-config --libs jansson) -lunistring -lcsv -Wl,-Bstatic -lphonenumber -lprotobuf-lite \
-Wl,-Bdynamic -labsl_hash -labsl_raw_hash_set -labsl_strings -labsl_throw_delegate \
$(pkg-config --libs icu-uc icu-i18n libzip expat) -lcrypto -lpthread"
clang++ -g -O1 -std=c++17 -fsanitize=fuzzer-no-link,address,undefined -Icommon/include \
    -c common/phonenumber.cc -o "$out/phonenumber.o"
common="common/normalize.c common/phone.c common/company.c $out/phonenumber.o"
for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    case $name in
    fuzz_normalize) extra="$common" ;;
    fuzz_parsers) extra="services/intake/parse.c services/intake/csv_import.c services/intake/mapping.c $common" ;;
    fuzz_event_head) extra="common/event_head.c tests/support/head_agree.c" ;;
    fuzz_xlsx) extra="services/intake/xlsx.c services/intake/parse.c services/intake/csv_import.c services/intake/mapping.c $common" ;;
    *) extra="" ;;
    esac
    # C sources as C, then everything linked by the C++ driver.
    objs=()
    for f in "$src" $extra; do
        case $f in
        *.c) o="$out/$name-$(basename "$f" .c).o"
             clang $CFLAGS -c "$f" -o "$o"; objs+=("$o") ;;
        *) objs+=("$f") ;;
        esac
    done
    clang++ -fsanitize=fuzzer,address,undefined "${objs[@]}" $LIBS -o "$out/$name"
    mkdir -p "$out/corpus-$name"
    # Hand-made seeds (fuzz/seeds/<target>/) give the structured targets a start.
    [ -d "fuzz/seeds/$name" ] && cp -n fuzz/seeds/"$name"/* "$out/corpus-$name/" 2>/dev/null || true
    echo "fuzzing $name for $secs s"
    "$out/$name" -max_total_time="$secs" -max_len=4096 -timeout=10 \
        -artifact_prefix="$out/$name-" "$out/corpus-$name" 2>"$out/$name.log" ||
        { tail -n 40 "$out/$name.log"; exit 1; }
    tail -n 1 "$out/$name.log"
done
