# cmake/aarch64-linux-gnu.cmake: cross-compiling loco for 64-bit Arm Linux with Debian's
# gcc-aarch64-linux-gnu; the tests run under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR, which
# ctest uses), with the arm64 libraries of Debian's multiarch packages (see scripts/test.sh).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config must describe the arm64 libraries, not the host's
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# the arm64 C library of the multiarch packages (libc6:arm64, at /), which the arm64 -dev
# packages bring: its loader and libc must come from the same package
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/)
