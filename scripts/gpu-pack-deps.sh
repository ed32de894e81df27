#!/usr/bin/env bash
# Packs, on this Debian 12 machine, what the runtime-only build
# (-DLLAMAC_ENABLE_COMPILER=OFF) needs and a bare CUDA image lacks, into
# <repo>/.gpu-deps (git-ignored), so that a GPU machine with only nvcc,
# CMake, ninja, gcc and python3 can build and run llamac from the working
# tree (scripts/gpu-check.sh). Builds nothing.
#
#   scripts/gpu-pack-deps.sh [--out DIR] [--check]
#
# What goes in (from the installed Debian packages; versions in
# .gpu-deps/README.txt): the headers of flatbuffers, nlohmann_json, CLI11,
# googletest/googlemock, OpenBLAS (cblas.h) and SentencePiece; flatc;
# libflatbuffers.a, libgtest*.a, libgmock*.a; libopenblas,
# libsentencepiece(_train) and the shared libraries they need beyond glibc,
# libstdc++ and libgcc_s (found with ldd: libgfortran, libquadmath); CMake
# package files for FlatBuffers, nlohmann_json, CLI11 and GTest. The layout
# is a prefix: configure with -DCMAKE_PREFIX_PATH=<repo>/.gpu-deps.
#
# Binaries are stored xz-compressed under .gpu-deps/packed (OpenBLAS alone
# is 36 MB raw, 4 MB compressed) and symlinks are made there, not here, so
# the folder stays small and carries no links: on the target run
#
#   bash .gpu-deps/unpack.sh        # idempotent; scripts/gpu-check.sh does it
#   . .gpu-deps/env.sh              # PATH (flatc) and LD_LIBRARY_PATH
#
# (Carry the folder packed, ~10 MiB; `bash .gpu-deps/unpack.sh --clean`
# packs an unpacked one again.)
#
# The carried libraries need glibc >= 2.34 and libstdc++ >= GLIBCXX_3.4.29
# (gcc 11; Ubuntu 22.04/24.04, Debian 12, RHEL 9); README.txt records the
# exact requirement.
#
# --check: unpacks a copy under /tmp and configures the runtime-only build
# against it with the system copies of these packages hidden, checks that
# every dependency resolves into the copy, builds two tiny targets
# (LlamacSupport, the flatc-generated plan header) and links and runs a small
# program against every carried library. About a minute on one core.
# Hiding: CMake alone (3.25) gets most of the way with
# -DCMAKE_SYSTEM_IGNORE_PREFIX_PATH='/usr;/' plus CMAKE_IGNORE_PATH for the
# explicit OpenBLAS folders and /usr/include, but not all: flatc is found on
# $PATH and the compiler searches /usr/include by itself. So the check runs in
# a private mount namespace (unshare -m; root) with those packages' files
# covered, and falls back to the CMake variables alone where that fails.
#
# Environment: LLAMAC_SRC (the source tree to configure with --check; default
# this repository).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.gpu-deps" check=0
while [ $# -gt 0 ]; do
  case "$1" in
  --out) out="$2"; shift 2 ;;
  --check) check=1; shift ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu-pack-deps.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "gpu-pack-deps.sh: $*" >&2; exit 1; }

for tool in dpkg-query ldd xz objdump; do
  command -v "$tool" >/dev/null || die "$tool is needed (Debian: dpkg, libc-bin, xz-utils, binutils)"
done

# Debian packages the pack reads, with what each provides.
packages=(libflatbuffers-dev flatbuffers-compiler nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libopenblas-pthread-dev libopenblas0-pthread
  libsentencepiece-dev libsentencepiece0)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    die "the Debian package $p is not installed (apt-get install -y $p, or bash scripts/install-deps.sh)"
done

# One file of an installed package, by the end of its path.
pkg_file() {
  local pkg="$1" suffix="$2" f
  f="$(dpkg-query -L "$pkg" | grep -E -- "$suffix\$" | head -1)"
  if [ -z "$f" ] || [ ! -e "$f" ]; then die "$pkg has no file matching $suffix"; fi
  echo "$f"
}

# Refuse to clobber a folder this script did not make.
if [ -e "$out" ] && [ ! -f "$out/README.txt" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  die "$out exists and was not made by this script; remove it or pass --out"
fi
rm -rf "$out"
mkdir -p "$out"/{include,lib/cmake,share/cmake,bin,packed/lib,packed/bin}

# --- headers ------------------------------------------------------------------
copy_include_dir() { # package, directory under /usr/include
  local dir
  dir="$(dpkg-query -L "$1" | grep -E "^/usr/include/$2\$" | head -1)"
  [ -d "$dir" ] || die "$1 has no /usr/include/$2"
  cp -a "$dir" "$out/include/"
}
copy_include_dir libflatbuffers-dev flatbuffers
copy_include_dir nlohmann-json3-dev nlohmann
copy_include_dir libcli11-dev CLI
copy_include_dir libgtest-dev gtest
copy_include_dir libgmock-dev gmock
for h in cblas.h openblas_config.h f77blas.h; do
  cp "$(pkg_file libopenblas-pthread-dev "/$h")" "$out/include/"
done
for h in sentencepiece_processor.h sentencepiece_trainer.h; do
  cp "$(pkg_file libsentencepiece-dev "/$h")" "$out/include/"
done

# --- binaries, stored compressed ------------------------------------------------
# pack SRC DEST: DEST relative to the prefix (lib/NAME or bin/NAME).
pack() {
  local src dest="$2"
  src="$(readlink -f "$1")"
  [ -f "$src" ] || die "missing $1"
  xz -T0 -9 -c "$src" >"$out/packed/$dest.xz"
  echo "$dest $(stat -c %s "$src")" >>"$out/packed/MANIFEST"
}
: >"$out/packed/MANIFEST"
pack "$(pkg_file flatbuffers-compiler /bin/flatc)" bin/flatc
pack "$(pkg_file libflatbuffers-dev /libflatbuffers.a)" lib/libflatbuffers.a
for a in libgtest.a libgtest_main.a; do pack "$(pkg_file libgtest-dev "/$a")" "lib/$a"; done
for a in libgmock.a libgmock_main.a; do pack "$(pkg_file libgmock-dev "/$a")" "lib/$a"; done
openblas="$(pkg_file libopenblas0-pthread /libopenblas.so.0)"
spm="$(pkg_file libsentencepiece0 /libsentencepiece.so.0)"
spm_train="$(pkg_file libsentencepiece0 /libsentencepiece_train.so.0)"
pack "$openblas" lib/libopenblas.so.0
pack "$spm" lib/libsentencepiece.so.0
pack "$spm_train" lib/libsentencepiece_train.so.0

# Shared libraries those need that a gcc + glibc system does not have for
# sure, under their SONAMEs (ldd resolves them here).
base_libs='^(linux-vdso|libc|libm|libdl|libpthread|librt|libresolv|ld-linux-x86-64|ld-linux-aarch64|libstdc\+\+|libgcc_s|libgomp)\.so'
declare -A packed_so=([libopenblas.so.0]=1 [libsentencepiece.so.0]=1 [libsentencepiece_train.so.0]=1)
declare -A extra_so=() # added from ldd: name -> the file here
binaries=("$openblas" "$spm" "$spm_train" "$(pkg_file flatbuffers-compiler /bin/flatc)")
while read -r name path; do
  [ -n "${packed_so[$name]:-}" ] && continue
  [ -f "$path" ] || die "ldd could not resolve $name"
  pack "$path" "lib/$name"
  packed_so[$name]=1
  extra_so[$name]="$(readlink -f "$path")"
  binaries+=("$path")
done < <(ldd "${binaries[@]}" 2>/dev/null | awk '$2 == "=>" {print $1, $3}' |
  grep -Ev "$base_libs" | sort -u)

# Symbol versions the carried binaries need from the target's glibc/libstdc++.
need() {
  objdump -T "${binaries[@]}" 2>/dev/null | grep -oE "\\b$1_[0-9.]+" | sort -Vu | tail -1
}
glibc_need="$(need GLIBC)" glibcxx_need="$(need GLIBCXX)"

# --- CMake package files ----------------------------------------------------------
# nlohmann_json and CLI11 install relocatable files under share/cmake (their
# imports are relative to the file): copied as they are.
for d in nlohmann_json CLI11; do
  cfg="$(dpkg-query -L nlohmann-json3-dev libcli11-dev | grep -E "/cmake/$d/${d}Config\\.cmake\$" | head -1)"
  [ -n "$cfg" ] || die "no ${d}Config.cmake"
  case "$cfg" in
  /usr/share/cmake/*) cp -a "$(dirname "$cfg")" "$out/share/cmake/" ;;
  *) die "$cfg is not under /usr/share/cmake; its relative imports would not fit the prefix" ;;
  esac
done
# FlatBuffers and GTest install theirs under lib/<multiarch>/cmake with
# multiarch library paths: written anew for this prefix, with the same
# imported targets and properties (the version files are copied).
mkdir -p "$out/lib/cmake/FlatBuffers" "$out/lib/cmake/GTest"
cp "$(pkg_file libflatbuffers-dev /FlatBuffersConfigVersion.cmake)" "$out/lib/cmake/FlatBuffers/"
cp "$(pkg_file libgtest-dev /GTestConfigVersion.cmake)" "$out/lib/cmake/GTest/"
cat >"$out/lib/cmake/FlatBuffers/FlatBuffersConfig.cmake" <<'EOF'
# Written by scripts/gpu-pack-deps.sh: Debian's FlatBuffers targets, for the
# .gpu-deps prefix (lib/ instead of lib/<multiarch>/).
get_filename_component(_fb_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
foreach(_fb_file "${_fb_prefix}/lib/libflatbuffers.a" "${_fb_prefix}/bin/flatc")
  if(NOT EXISTS "${_fb_file}")
    set(FlatBuffers_FOUND FALSE)
    set(FlatBuffers_NOT_FOUND_MESSAGE "${_fb_file} is missing: run bash ${_fb_prefix}/unpack.sh")
    return()
  endif()
endforeach()
if(NOT TARGET flatbuffers::flatbuffers)
  add_library(flatbuffers::flatbuffers STATIC IMPORTED)
  set_target_properties(flatbuffers::flatbuffers PROPERTIES
    IMPORTED_LOCATION "${_fb_prefix}/lib/libflatbuffers.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "CXX"
    INTERFACE_INCLUDE_DIRECTORIES "${_fb_prefix}/include")
endif()
if(NOT TARGET flatbuffers::flatc)
  add_executable(flatbuffers::flatc IMPORTED)
  set_target_properties(flatbuffers::flatc PROPERTIES
    IMPORTED_LOCATION "${_fb_prefix}/bin/flatc")
endif()
unset(_fb_file)
unset(_fb_prefix)
EOF
cat >"$out/lib/cmake/GTest/GTestConfig.cmake" <<'EOF'
# Written by scripts/gpu-pack-deps.sh: Debian's GTest/GMock targets, for the
# .gpu-deps prefix (lib/ instead of lib/<multiarch>/).
get_filename_component(_gt_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT EXISTS "${_gt_prefix}/lib/libgtest.a")
  set(GTest_FOUND FALSE)
  set(GTest_NOT_FOUND_MESSAGE "${_gt_prefix}/lib/libgtest.a is missing: run bash ${_gt_prefix}/unpack.sh")
  return()
endif()
include(CMakeFindDependencyMacro)
find_dependency(Threads)
macro(_gt_add name deps)
  if(NOT TARGET GTest::${name})
    add_library(GTest::${name} STATIC IMPORTED)
    set_target_properties(GTest::${name} PROPERTIES
      IMPORTED_LOCATION "${_gt_prefix}/lib/lib${name}.a"
      IMPORTED_LINK_INTERFACE_LANGUAGES "CXX"
      INTERFACE_COMPILE_FEATURES "cxx_std_11"
      INTERFACE_INCLUDE_DIRECTORIES "${_gt_prefix}/include"
      INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_gt_prefix}/include"
      INTERFACE_LINK_LIBRARIES "${deps}")
  endif()
endmacro()
_gt_add(gtest "Threads::Threads")
set_property(TARGET GTest::gtest PROPERTY INTERFACE_COMPILE_OPTIONS "-DGTEST_HAS_PTHREAD=1")
_gt_add(gtest_main "Threads::Threads;GTest::gtest")
_gt_add(gmock "Threads::Threads;GTest::gtest")
_gt_add(gmock_main "Threads::Threads;GTest::gmock")
# The names FindGTest.cmake gives them.
foreach(_gt_alias GTest Main)
  if(NOT TARGET GTest::${_gt_alias})
    add_library(GTest::${_gt_alias} INTERFACE IMPORTED)
  endif()
endforeach()
set_property(TARGET GTest::GTest PROPERTY INTERFACE_LINK_LIBRARIES GTest::gtest)
set_property(TARGET GTest::Main PROPERTY INTERFACE_LINK_LIBRARIES GTest::gtest_main)
set(GTEST_INCLUDE_DIRS "${_gt_prefix}/include")
set(GTEST_LIBRARIES GTest::gtest)
set(GTEST_MAIN_LIBRARIES GTest::gtest_main)
set(GTEST_BOTH_LIBRARIES GTest::gtest GTest::gtest_main)
unset(_gt_alias)
unset(_gt_prefix)
EOF

# --- unpack.sh, env.sh, README.txt -------------------------------------------------
cat >"$out/unpack.sh" <<'EOF'
#!/usr/bin/env bash
# Unpacks packed/*.xz into bin/ and lib/ and makes the .so symlinks.
# Idempotent (files already unpacked at the recorded size are kept). Uses xz,
# else Python's lzma. --clean removes what it unpacked (to carry the folder
# small again). Written by scripts/gpu-pack-deps.sh.
set -euo pipefail
prefix="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" = --clean ]; then
  while read -r rel _; do rm -f "$prefix/$rel" "$prefix/$rel.tmp"; done <"$prefix/packed/MANIFEST"
  find "$prefix/lib" -maxdepth 1 -type l -name '*.so' -delete
  exit 0
fi
while read -r rel size; do
  dest="$prefix/$rel"
  if [ -f "$dest" ] && [ "$(stat -c %s "$dest")" = "$size" ]; then continue; fi
  mkdir -p "$(dirname "$dest")"
  if command -v xz >/dev/null; then
    xz -dc "$prefix/packed/$rel.xz" >"$dest.tmp"
  else
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as f, open(sys.argv[2], "wb") as g:
    shutil.copyfileobj(f, g)' "$prefix/packed/$rel.xz" "$dest.tmp"
  fi
  [ "$(stat -c %s "$dest.tmp")" = "$size" ] || { echo "unpack.sh: $rel: wrong size" >&2; exit 1; }
  chmod 755 "$dest.tmp"
  # A fixed time: a re-unpacked library does not relink a finished build.
  touch -d '2000-01-01 00:00:00' "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
done <"$prefix/packed/MANIFEST"
for so in "$prefix"/lib/*.so.[0-9]*; do
  link="${so%.so.*}.so"
  [ -e "$link" ] || ln -s "$(basename "$so")" "$link"
done
EOF
cat >"$out/env.sh" <<'EOF'
# Source after unpack.sh: flatc on PATH, the carried libraries on
# LD_LIBRARY_PATH (libopenblas needs libgfortran at run time).
_gpu_deps="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$_gpu_deps/bin${PATH:+:$PATH}"
export LD_LIBRARY_PATH="$_gpu_deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _gpu_deps
EOF
{
  echo "Dependencies of the llamac runtime-only build, packed by scripts/gpu-pack-deps.sh"
  echo "on $(date -u +%Y-%m-%d) from $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release) ($(uname -m))."
  echo
  echo "Use:   bash .gpu-deps/unpack.sh && . .gpu-deps/env.sh"
  echo "       cmake ... -DCMAKE_PREFIX_PATH=\$PWD/.gpu-deps"
  echo "Needs: glibc >= ${glibc_need#GLIBC_}, libstdc++ with ${glibcxx_need} (gcc >= 11), gcc's OpenMP (libgomp)"
  echo
  echo "Debian packages:"
  for p in "${packages[@]}"; do
    dpkg-query -W -f='  ${Package} ${Version}\n' "$p"
  done
  echo "Shared libraries added from ldd (their packages):"
  for so in "${!extra_so[@]}"; do
    echo "  $so: $(dpkg-query -S "${extra_so[$so]}" 2>/dev/null | cut -d: -f1 | head -1)" \
      "$(dpkg-query -W -f='${Version}' "$(dpkg-query -S "${extra_so[$so]}" 2>/dev/null | cut -d: -f1 | head -1)" 2>/dev/null)"
  done
} >"$out/README.txt"

size_kib="$(du -sk "$out" | cut -f1)"
unpacked_kib="$(awk '{s += $2} END {printf "%d", s / 1024}' "$out/packed/MANIFEST")"
echo "gpu-pack-deps.sh: wrote $out: $((size_kib / 1024)).$((size_kib % 1024 * 10 / 1024)) MiB" \
  "($((unpacked_kib / 1024)) MiB of binaries once unpacked); needs ${glibc_need}, ${glibcxx_need}"

[ "$check" = 1 ] || exit 0

# --- --check ---------------------------------------------------------------------------
src="${LLAMAC_SRC:-$root}"
for tool in cmake ninja gcc; do command -v "$tool" >/dev/null || die "--check needs $tool"; done
scratch="$(mktemp -d /tmp/gpu-deps-check.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
cp -a "$out" "$scratch/prefix"
bash "$scratch/prefix/unpack.sh"
prefix="$scratch/prefix"

# The system copies a configure or a compile could fall back to: the
# top-level entry (file or folder) of every file of the packages above under
# /usr/include, /usr/lib/<multiarch>, /usr/bin and the CMake/pkg-config
# folders, the alternatives links to OpenBLAS, and the libraries ldd found.
arch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
mapfile -t hide < <(
  {
    dpkg-query -L "${packages[@]}"
    for f in /usr/include/"$arch"/{cblas,cblas-openblas,openblas_config,f77blas}.h \
      /usr/lib/"$arch"/libopenblas.{a,so,so.0}; do
      [ -L "$f" ] && echo "$f"
    done
    for so in "${!packed_so[@]}"; do
      for f in /usr/lib/"$arch"/"$so" /usr/lib/"$arch"/"${so%.so.*}.so"; do
        [ -e "$f" ] && echo "$f" && readlink -f "$f"
      done
    done
  } | awk -v arch="$arch" '
    BEGIN {
      n = split("/usr/lib/" arch "/cmake /usr/lib/" arch "/pkgconfig /usr/include/" arch \
                " /usr/lib/" arch " /usr/share/cmake /usr/share/pkgconfig /usr/include /usr/lib /usr/bin",
                roots, " ")
      for (i = 1; i <= n; i++) isroot[roots[i]] = 1
    }
    $0 in isroot { next }
    {
      for (i = 1; i <= n; i++) {
        r = roots[i] "/"
        if (index($0, r) == 1) {
          split(substr($0, length(r) + 1), parts, "/")
          print r parts[1]
          break
        }
      }
    }' | sort -u)

# What CMake alone can be told to skip (CMake 3.25): the /usr and / prefixes
# (config packages, SentencePiece, GTest, multiarch folders) and, by exact
# folder, the PATHS of llamac_find_openblas and /usr/include. flatc is found
# on $PATH, which no such variable removes, and the compiler's own
# /usr/include neither: only the mount namespace hides those (with the prefix
# first in the search, flatc comes from it either way).
arch_dirs="/usr/include/$arch/openblas-pthread;/usr/lib/$arch/openblas-pthread"
ignore_flags=("-DCMAKE_SYSTEM_IGNORE_PREFIX_PATH=/usr;/"
  "-DCMAKE_IGNORE_PATH=$arch_dirs;/usr/include/openblas;/usr/include")

cat >"$scratch/configure.sh" <<EOF
set -euo pipefail
cd "$scratch"
# The hidden system copies: prove it.
for f in /usr/include/nlohmann/json.hpp /usr/include/$arch/cblas.h /usr/bin/flatc \\
  /usr/include/sentencepiece_processor.h /usr/include/gtest/gtest.h /usr/lib/$arch/libopenblas.so.0; do
  if [ -s "\$f" ] && [ "\${GPU_DEPS_ISOLATED:-0}" = 1 ]; then echo "still visible: \$f"; exit 1; fi
done
cmake -G Ninja -S "$src" -B build -DLLAMAC_ENABLE_COMPILER=OFF -DLLAMAC_ENABLE_MPI=OFF \\
  -DLLAMAC_ENABLE_CUDA=OFF -DCMAKE_PREFIX_PATH="$prefix" \\
  ${ignore_flags[*]@Q} >configure.log 2>&1 ||
  { tail -30 configure.log; exit 1; }
. "$prefix/env.sh"
nice ninja -C build -j1 LlamacSupport LlamacPlanSchemaGen >build.log 2>&1 || { tail -30 build.log; exit 1; }
mkdir -p probe
cat >probe/CMakeLists.txt <<'CM'
cmake_minimum_required(VERSION 3.20)
project(probe CXX)
set(CMAKE_CXX_STANDARD 17)
list(APPEND CMAKE_MODULE_PATH "$src/cmake")
include(LlamacDeps)
find_package(Threads REQUIRED)
llamac_find_openblas()
llamac_find_config(nlohmann_json nlohmann-json3-dev 3.10)
llamac_find_config(CLI11 libcli11-dev)
llamac_find_config(FlatBuffers libflatbuffers-dev)
find_package(GTest REQUIRED)
find_path(SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h REQUIRED)
find_library(SENTENCEPIECE_LIBRARY sentencepiece REQUIRED)
find_library(SENTENCEPIECE_TRAIN_LIBRARY sentencepiece_train REQUIRED)
add_executable(probe probe.cpp)
target_include_directories(probe PRIVATE "$scratch/build/runtime/plan" \${SENTENCEPIECE_INCLUDE_DIR})
target_link_libraries(probe PRIVATE llamac::openblas nlohmann_json::nlohmann_json CLI11::CLI11
  flatbuffers::flatbuffers GTest::gmock GTest::gtest_main \${SENTENCEPIECE_TRAIN_LIBRARY} \${SENTENCEPIECE_LIBRARY})
CM
cat >probe/probe.cpp <<'CPP'
#include <CLI/CLI.hpp>
#include <cblas.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include "plan/Plan_generated.h"
TEST(Probe, EveryLibrary) {
  float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {0};
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2);
  EXPECT_THAT(std::vector<float>(c, c + 4), ::testing::ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(nlohmann::json::parse("{\"x\": 3}")["x"], 3);
  CLI::App app("probe");
  EXPECT_EQ(app.get_description(), "probe");
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(fbb.CreateString("plan"));
  EXPECT_GT(fbb.GetSize(), 0u);
  sentencepiece::SentencePieceProcessor sp;
  EXPECT_FALSE(sp.Load("/nonexistent.model").ok());
  EXPECT_FALSE(sentencepiece::SentencePieceTrainer::Train("--input=/nonexistent").ok());
}
CPP
cmake -G Ninja -S probe -B probe/build -DCMAKE_PREFIX_PATH="$prefix" \\
  ${ignore_flags[*]@Q} >probe.log 2>&1 ||
  { tail -30 probe.log; exit 1; }
nice ninja -C probe/build >>probe.log 2>&1 || { tail -30 probe.log; exit 1; }
probe/build/probe --gtest_brief=1 >>probe.log 2>&1 || { tail -30 probe.log; exit 1; }
echo "probe: compiled, linked and ran against every carried library"
ldd probe/build/probe | grep -E 'openblas|sentencepiece|gfortran|quadmath'
EOF

if unshare -m --propagation private true 2>/dev/null; then
  echo "--check: configuring in a private mount namespace with ${#hide[@]} system files of those packages hidden"
  {
    echo "set -e"
    echo "empty=\$(mktemp -d)"
    # Files first: a link may point into a folder hidden after it.
    for f in "${hide[@]}"; do
      if [ -e "$f" ] && [ ! -d "$f" ]; then echo "mount --bind /dev/null '$(readlink -f "$f")'"; fi
    done
    for f in "${hide[@]}"; do
      if [ -d "$f" ] && [ ! -L "$f" ]; then echo "mount --bind \"\$empty\" '$f'"; fi
    done
    echo "GPU_DEPS_ISOLATED=1 bash '$scratch/configure.sh'"
  } >"$scratch/isolated.sh"
  unshare -m --propagation private bash "$scratch/isolated.sh"
else
  echo "--check: no mount namespace here (unshare -m failed): relying on CMAKE_SYSTEM_IGNORE_PREFIX_PATH / CMAKE_IGNORE_PATH only"
  bash "$scratch/configure.sh"
fi

# Every dependency must resolve into the prefix.
bad=0
while IFS= read -r line; do
  var="${line%%:*}" value="${line#*=}"
  case "$value" in
  "$prefix"/*) printf '  %-30s %s\n' "$var" "${value/#$prefix/<.gpu-deps>}" ;;
  *) printf '  %-30s %s   <-- not in the prefix\n' "$var" "$value"; bad=1 ;;
  esac
done < <(grep -E '^(OPENBLAS_INCLUDE_DIR|OPENBLAS_LIBRARY|SENTENCEPIECE_INCLUDE_DIR|SENTENCEPIECE_LIBRARY|SENTENCEPIECE_TRAIN_LIBRARY|FLATC_EXECUTABLE|nlohmann_json_DIR|CLI11_DIR|FlatBuffers_DIR|GTest_DIR):' \
  "$scratch/build/CMakeCache.txt")
[ "$bad" = 0 ] || die "--check: some dependencies came from the system"
echo "--check: OK (every dependency from the prefix; LlamacSupport and Plan_generated.h built)"
