#!/usr/bin/env bash
# CI: the library cross-compiled for aarch64 Linux and run under qemu
# user-mode emulation, with both context switches (the hand-written asm and
# ucontext). Runs, for each: the cmocka suite and the example checks through
# ctest (when cmocka for arm64 can be had from Debian multiarch), the
# self-checking smoke test tests/cross/smoke.c (registers across switches,
# deep recursion, many tasks); and once: tests/cross/bti.c, the asm switch
# under branch target enforcement.
#
# Installs what it needs (Debian, as root). If it cannot, it says so and
# exits 0: this is an extra check, not a reason to fail the build.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=2
TRIPLE=aarch64-linux-gnu
section() { printf '\n==== %s ====\n' "$*"; }
skip() {
  echo "cross-aarch64: SKIPPED: $*"
  exit 0
}

section "aarch64 cross toolchain and qemu"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v $TRIPLE-gcc >/dev/null || need+=(gcc-$TRIPLE libc6-dev-arm64-cross)
command -v $TRIPLE-g++ >/dev/null || need+=(g++-$TRIPLE)
command -v qemu-aarch64-static >/dev/null || command -v qemu-aarch64 >/dev/null ||
  need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || skip "need ${need[*]} (Debian, as root)"
  echo "installing: ${need[*]}"
  apt-get update -qq || skip "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    skip "could not install ${need[*]}"
fi
QEMU=$(command -v qemu-aarch64-static || command -v qemu-aarch64)

# cmocka for arm64 through Debian multiarch (optional: without it the smoke
# test still runs). If the arm64 package lists cannot be fetched, the
# architecture is removed again so that apt keeps working for everyone else.
if [ ! -e /usr/lib/$TRIPLE/libcmocka.so ] && [ "$(id -u)" = 0 ] && command -v dpkg >/dev/null; then
  added=0
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64 && added=1
  fi
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends libcmocka-dev:arm64 >/dev/null; then
    echo "installed libcmocka-dev:arm64"
  else
    echo "libcmocka-dev:arm64 not available: cmocka tests skipped, smoke test only"
    if [ $added = 1 ]; then
      dpkg --remove-architecture arm64 || true
      apt-get update -qq || true
    fi
  fi
fi

# Which loader qemu must use. The multiarch libc6:arm64 (pulled in with
# cmocka) and the cross libc are different builds; the cross loader with the
# multiarch libc hangs in pthread_create. The toolchain file makes the same
# choice for ctest.
if [ -e /lib/ld-linux-aarch64.so.1 ]; then
  RUN=("$QEMU")
else
  RUN=("$QEMU" -L /usr/$TRIPLE)
fi

# Tests that cannot work under qemu user-mode emulation (not aarch64 bugs):
#  test_overflow: qemu's madvise() ignores MADV_GUARD_INSTALL and returns 0,
#    so no guard page is installed (passes when guard pages fall back to
#    mprotect);
#  test_chat, test_chat_peers, test_fibserver: they exec the example servers,
#    and without binfmt_misc an aarch64 binary cannot be exec'd;
#  example_fetch_local_server, example_parallel, example_udp_echo: the same,
#    their Python drivers exec the example;
#  test_coro.test_first_step_without_address_space: RLIMIT_AS limits qemu's
#    own address space, not the guest's mmap;
#  test_process.test_sigmask, test_process.test_kill_group: qemu's signal
#    emulation shows in the spawned children (masks, process groups);
#  test_dumpsig.test_environment_arms_the_dump: runs itself again through
#    /proc/self/exe, which under qemu-user is not an exec'able binary;
#  gdb_live, gdb_attach, gdb_core, example_trace: the host's gdb or a Python
#    driver runs the aarch64 program;
#  (deadlock reports skip themselves: qemu's own threads make the loop wait
#    for other threads instead, see deadlocks_detectable in aloop_test.h)
#  label stress (test_soak --stress): runs the binary outside the emulator.
# Each cmocka test is its own ctest entry, named program.test.
QEMU_EXCLUDE='^(test_overflow|test_chat|test_chat_peers|test_fibserver)\.|^example_(fetch_local_server|parallel|udp_echo)$|^test_coro\.test_first_step_without_address_space$|^test_process\.test_(sigmask|kill_group)$|^test_dumpsig\.test_environment_arms_the_dump$|^gdb_(live|attach|core)$|^example_trace$'

failures=0
for mode in asm ucontext; do
  section "aarch64, $mode context: build"
  dir=build-cross-aarch64-$mode
  cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/$TRIPLE.cmake" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DALOOP_CONTEXT=$mode -DALOOP_WERROR=ON \
    -DALOOP_BUILD_BENCH=OFF >/dev/null
  grep -q "^ALOOP_CONTEXT:STRING=$mode$" "$dir/CMakeCache.txt" || {
    echo "configured with the wrong context"
    failures=$((failures + 1))
  }
  if ! cmake --build "$dir" -j"$JOBS" >"$dir/build.log" 2>&1; then
    cat "$dir/build.log"
    failures=$((failures + 1))
    continue
  fi

  section "aarch64, $mode context: smoke test under qemu"
  $TRIPLE-gcc -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror -Iinclude \
    tests/cross/smoke.c "$dir/libaloop.a" -lpthread -lm -o "$dir/cross-smoke"
  "${RUN[@]}" "$dir/cross-smoke" || failures=$((failures + 1))

  section "aarch64, $mode context: ctest under qemu"
  if [ -e "$dir/tests/CTestTestfile.cmake" ]; then
    echo "(not under qemu: ${QEMU_EXCLUDE}, label stress; see the comment in this script)"
  else
    echo "(cmocka not found: examples only)"
  fi
  ctest --test-dir "$dir" -j"$JOBS" --timeout 120 -LE stress -E "$QEMU_EXCLUDE" \
    --output-on-failure || failures=$((failures + 1))
done

section "aarch64: the asm switch under branch target enforcement (BTI)"
# No libc (Debian's is not BTI-marked, and one unmarked object turns BTI
# off): bti.c has its own _start; coro.o's other references stay unresolved
# and are never reached. qemu -cpu max enforces BTI on the marked pages.
dir=build-cross-aarch64-asm
mkdir -p "$dir"
$TRIPLE-gcc -std=c11 -O2 -fPIC -mbranch-protection=standard -D_GNU_SOURCE \
  -DALOOP_POLLER_EPOLL -Iinclude -Isrc/base -c src/base/coro.c -o "$dir/bti-coro.o"
$TRIPLE-gcc -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror -ffreestanding \
  -mbranch-protection=standard -c tests/cross/bti.c -o "$dir/bti-main.o"
$TRIPLE-gcc -nostdlib -static -Wl,-z,force-bti -Wl,--unresolved-symbols=ignore-all \
  "$dir/bti-main.o" "$dir/bti-coro.o" -o "$dir/cross-bti" 2>&1 | grep -v "force-bti" || true
"$QEMU" -cpu max "$dir/cross-bti" || failures=$((failures + 1))

section "cross-aarch64: $failures failure(s)"
[ $failures = 0 ]
