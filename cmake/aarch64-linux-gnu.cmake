# Cross-compiling for aarch64 Linux with Debian's cross toolchain
# (gcc-aarch64-linux-gnu), tests run under qemu user-mode emulation.
#
#   cmake -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-arm64 -j2 && ctest --test-dir build-arm64
#
# Libraries for the target (cmocka) come from Debian multiarch
# (dpkg --add-architecture arm64; apt-get install libcmocka-dev:arm64), which
# puts them in /usr/lib/aarch64-linux-gnu; headers are shared with the host.
# .ci/cross-aarch64.sh does all of that.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(ALOOP_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${ALOOP_CROSS_TRIPLE}-gcc)
# Named even if not installed, so that check_language(CXX) fails rather than
# picking up the host's c++ (the C++ header test is then skipped).
set(CMAKE_CXX_COMPILER ${ALOOP_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${ALOOP_CROSS_TRIPLE})

# ctest (and add_test(COMMAND <target>)) run target binaries through this.
# With multiarch libc6:arm64 installed, the target's loader is at
# /lib/ld-linux-aarch64.so.1 and qemu needs no -L. Else the cross libc is the
# only one: -L makes qemu look for the loader there. Never mix the two: the
# cross loader with the multiarch libc (different builds) hangs in
# pthread_create.
find_program(ALOOP_QEMU NAMES qemu-aarch64-static qemu-aarch64)
if(ALOOP_QEMU AND EXISTS /lib/ld-linux-aarch64.so.1)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ALOOP_QEMU})
elseif(ALOOP_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ALOOP_QEMU} -L /usr/${ALOOP_CROSS_TRIPLE})
endif()

# Programs (cmake, python) from the host; libraries and headers from the
# target's sysroot and the multiarch directories.
set(CMAKE_FIND_ROOT_PATH /usr/${ALOOP_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
