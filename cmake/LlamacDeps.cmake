# Dependency discovery with actionable failures.
#
# Every required package is looked up here, and a miss stops configure with
# one message that names the Debian package and the apt-get line to install
# it, instead of a page of CMake noise.

set(LLAMAC_APT_HINT "run: sudo bash scripts/install-deps.sh   (or apt-get install the package named above)")

function(llamac_missing what debpkg)
  message(FATAL_ERROR
    "llamac: ${what} was not found.\n"
    "  It comes from the Debian package '${debpkg}'. Install it with:\n"
    "    apt-get install -y ${debpkg}\n"
    "  or install everything at once with: bash scripts/install-deps.sh")
endfunction()

# --- OpenBLAS (CPU GEMMs) ---------------------------------------------------
function(llamac_find_openblas)
  find_path(OPENBLAS_INCLUDE_DIR cblas.h
    PATHS /usr/include/x86_64-linux-gnu/openblas-pthread
          /usr/include/aarch64-linux-gnu/openblas-pthread
          /usr/include/openblas /usr/include)
  find_library(OPENBLAS_LIBRARY NAMES openblas
    PATHS /usr/lib/x86_64-linux-gnu/openblas-pthread
          /usr/lib/aarch64-linux-gnu/openblas-pthread)
  if(NOT OPENBLAS_INCLUDE_DIR OR NOT OPENBLAS_LIBRARY)
    llamac_missing("OpenBLAS (cblas.h / libopenblas)" "libopenblas-dev")
  endif()
  if(NOT TARGET llamac::openblas)
    add_library(llamac::openblas UNKNOWN IMPORTED GLOBAL)
    set_target_properties(llamac::openblas PROPERTIES
      IMPORTED_LOCATION "${OPENBLAS_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${OPENBLAS_INCLUDE_DIR}")
  endif()
endfunction()

# --- header-only / config-file packages -------------------------------------
function(llamac_find_config pkg debpkg)
  find_package(${pkg} ${ARGN} CONFIG QUIET)
  if(NOT ${pkg}_FOUND)
    llamac_missing("${pkg}" "${debpkg}")
  endif()
endfunction()

# llamac_add_unittest(NAME SOURCES... LIBS libs...)
# A GoogleTest executable named <NAME>Tests in <build>/unittests, picked up by
# the lit GoogleTest suite (test/unit) and by ctest.
function(llamac_add_unittest name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  if(NOT LLAMAC_ENABLE_TESTS)
    return()
  endif()
  add_executable(${name}Tests ${ARG_SOURCES})
  target_link_libraries(${name}Tests PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main)
  set_target_properties(${name}Tests PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/unittests)
  add_test(NAME ${name}Tests COMMAND ${name}Tests)
  set_property(GLOBAL APPEND PROPERTY LLAMAC_UNITTESTS ${name}Tests)
endfunction()

# llamac_add_mpi_test(NAME SOURCES... LIBS libs... NP n)
# A GoogleTest executable with its own main (runtime/comm/tests/MpiTestMain.cpp)
# that runs under mpirun: built into <build>/bin, where the unit suite (which
# runs executables without mpirun) does not look; registered with ctest as
# `mpirun -np n NAME`; listed in LLAMAC_MPI_TESTS for the lit suites, whose
# test/e2e/mpi-*.test files launch it. Only with LLAMAC_ENABLE_MPI.
function(llamac_add_mpi_test name)
  cmake_parse_arguments(ARG "" "NP" "SOURCES;LIBS" ${ARGN})
  if(NOT LLAMAC_ENABLE_TESTS OR NOT LLAMAC_ENABLE_MPI)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} LlamacComm GTest::gtest)
  # --allow-run-as-root: CI containers run as root (OpenMPI's mpirun).
  add_test(NAME ${name}
    COMMAND ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe
            ${MPIEXEC_NUMPROC_FLAG} ${ARG_NP} $<TARGET_FILE:${name}>)
  set_tests_properties(${name} PROPERTIES TIMEOUT 300
    ENVIRONMENT OMP_NUM_THREADS=1)
  set_property(GLOBAL APPEND PROPERTY LLAMAC_MPI_TESTS ${name})
endfunction()
