#!/bin/sh
# consumer.sh - installs libaloop into a scratch prefix and builds a tiny
# out-of-tree program against the installed package three ways:
#   1. pkg-config, shared library      (cc $(pkg-config --cflags --libs aloop))
#   2. pkg-config --static, static lib (cc ... -static flags, no .so at run time)
#   3. CMake find_package(aloop CONFIG) -> aloop::aloop
# Each program runs and must print "consumer ok <version>". When aloop-tls
# was installed too (OpenSSL 3 present), a TLS program is built against it
# with pkg-config and with find_package (aloop::tls) and must print
# "consumer tls ok".
#
# usage: .ci/consumer.sh [build-dir]   (default: build/consumer, configured here)
# CC, CMAKE and the generator come from the environment as usual.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build/consumer}
work=$(mktemp -d "${TMPDIR:-/tmp}/aloop-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
prefix=$work/prefix
cc=${CC:-cc}

step() { printf '==> %s\n' "$*"; }

step "build and install into $prefix"
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DALOOP_BUILD_TESTS=OFF -DALOOP_BUILD_EXAMPLES=OFF -DALOOP_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$build" -j2 >/dev/null
cmake --install "$build" --prefix "$prefix" >/dev/null

libdir=$(dirname "$(find "$prefix" -name aloop.pc | head -n 1)")/..
libdir=$(cd "$libdir" && pwd)
for f in "$prefix/include/aloop.h" "$libdir/libaloop.a" "$libdir/libaloop.so" \
         "$libdir/libaloop.so.0" "$libdir/pkgconfig/aloop.pc" \
         "$libdir/cmake/aloop/aloopConfig.cmake" "$libdir/cmake/aloop/aloopTargets.cmake"; do
    [ -e "$f" ] || { echo "missing after install: $f" >&2; exit 1; }
done

mkdir -p "$work/app"
cat > "$work/app/main.c" <<'C'
#include <aloop.h>
#include <stdio.h>

static void *work(void *arg) {
    (void)arg;
    if (aloop_sleep(1.0) < 0) return NULL;
    return (void *)aloop_version();
}

int main(void) {
    aloop_config_t cfg = {0};
    cfg.clock = ALOOP_CLOCK_VIRTUAL;
    void *v = NULL;
    if (aloop_main_with(&cfg, work, NULL, &v) != 0 || !v) return 1;
    printf("consumer ok %s\n", (const char *)v);
    return 0;
}
C
cat > "$work/app/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.16)
project(aloop_consumer C)
find_package(aloop 0.1 CONFIG REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE aloop::aloop)
add_executable(consumer_static main.c)
target_link_libraries(consumer_static PRIVATE aloop::aloop_static)
C

export PKG_CONFIG_PATH="$libdir/pkgconfig"
check() { # name, program
    out=$("$2")
    case $out in
    "consumer ok "*) step "$1: $out" ;;
    *) echo "$1: unexpected output: $out" >&2; exit 1 ;;
    esac
}

step "pkg-config (shared)"
# shellcheck disable=SC2046
$cc -o "$work/pc_shared" "$work/app/main.c" $(pkg-config --cflags --libs aloop) \
    -Wl,-rpath,"$libdir"
check "pkg-config shared" "$work/pc_shared"
if ! ldd "$work/pc_shared" | grep -q "libaloop.so.0"; then
    echo "pkg-config shared build does not use libaloop.so.0" >&2; exit 1
fi

step "pkg-config --static"
# shellcheck disable=SC2046
$cc -o "$work/pc_static" "$work/app/main.c" $(pkg-config --cflags aloop) \
    "$libdir/libaloop.a" $(pkg-config --libs-only-other --libs-only-l --static aloop | sed 's/-laloop//')
check "pkg-config static" "$work/pc_static"

step "find_package(aloop CONFIG)"
cmake -S "$work/app" -B "$work/app/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/app/build" >/dev/null
check "find_package aloop::aloop" "$work/app/build/consumer"
check "find_package aloop::aloop_static" "$work/app/build/consumer_static"

if [ -f "$prefix/include/aloop_tls.h" ]; then
    for f in "$libdir/libaloop-tls.a" "$libdir/libaloop-tls.so" "$libdir/pkgconfig/aloop-tls.pc"; do
        [ -e "$f" ] || { echo "missing after install: $f" >&2; exit 1; }
    done
    mkdir -p "$work/tls"
    cat > "$work/tls/main.c" <<'C'
#include <aloop_tls.h>
#include <stdio.h>

int main(void) {
    aloop_tls_config_t *c = aloop_tls_client_config_new();
    if (!c || aloop_tls_version(NULL) != NULL) return 1;
    aloop_tls_config_free(c);
    printf("consumer tls ok\n");
    return 0;
}
C
    cat > "$work/tls/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.16)
project(aloop_tls_consumer C)
find_package(aloop 0.1 CONFIG REQUIRED)
add_executable(consumer_tls main.c)
target_link_libraries(consumer_tls PRIVATE aloop::tls)
C
    checktls() { # name, program
        out=$("$2")
        [ "$out" = "consumer tls ok" ] || { echo "$1: unexpected output: $out" >&2; exit 1; }
        step "$1: $out"
    }
    step "aloop-tls: pkg-config (shared)"
    # shellcheck disable=SC2046
    $cc -o "$work/pc_tls" "$work/tls/main.c" $(pkg-config --cflags --libs aloop-tls) \
        -Wl,-rpath,"$libdir"
    checktls "pkg-config aloop-tls" "$work/pc_tls"
    step "aloop-tls: find_package(aloop CONFIG) -> aloop::tls"
    cmake -S "$work/tls" -B "$work/tls/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$work/tls/build" >/dev/null
    checktls "find_package aloop::tls" "$work/tls/build/consumer_tls"
else
    step "aloop-tls not installed (no OpenSSL 3): its consumers are skipped"
fi

step "all consumers built and ran"
