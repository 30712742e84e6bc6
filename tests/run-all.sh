#!/usr/bin/env bash
# tests/run-all.sh: everything CI checks, from a fresh clone, as root:
#   1. packaging/install-deps.sh
#   2. build with -DVDI_WERROR=ON in build/, run the whole ctest suite (unit + integration)
#   3. build with -DVDI_SANITIZE=ON (ASan + UBSan) in build-sanitize/, run the suite again
# then a summary; exits non-zero when any step failed. About 10-20 minutes on 2 cores.
#
# Environment: VDI_JOBS (parallel build jobs, default nproc), VDI_BUILD_DIR and
# VDI_SANITIZE_BUILD_DIR (default build/ and build-sanitize/), VDI_SKIP_SANITIZE=1 to
# leave out step 3 locally (CI never sets it), VDI_CTEST_ARGS (extra ctest arguments,
# e.g. "-L unit").
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
jobs=${VDI_JOBS:-$(nproc)}
build=${VDI_BUILD_DIR:-$src/build}
build_san=${VDI_SANITIZE_BUILD_DIR:-$src/build-sanitize}
read -r -a ctest_extra <<<"${VDI_CTEST_ARGS:-}"
summary=()
failed=0
SECONDS=0

# stage NAME CMD...: runs one step, records its result and time.
stage() {
    local name=$1 start=$SECONDS rc
    shift
    printf '\n######## %s\n' "$name"
    "$@"
    rc=$?
    if [ $rc -eq 0 ]; then
        summary+=("$(printf '%-34s ok      %4ds' "$name" $((SECONDS - start)))")
    else
        summary+=("$(printf '%-34s FAILED  %4ds  (exit %d)' "$name" $((SECONDS - start)) $rc)")
        failed=1
    fi
    return $rc
}

skip() { summary+=("$(printf '%-34s skipped (%s)' "$1" "$2")"); }

configure_and_build() {
    local dir=$1
    shift
    cmake -S "$src" -B "$dir" -DVDI_WERROR=ON "$@" && cmake --build "$dir" -j "$jobs"
}

run_suite() {
    # Unit tests in parallel; the VM tests hold a resource lock and run one at a time.
    ctest --test-dir "$1" --output-on-failure -j "$jobs" "${ctest_extra[@]}"
}

if [ "$(id -u)" -eq 0 ]; then
    stage "install dependencies" "$src/packaging/install-deps.sh"
else
    skip "install dependencies" "not root"
fi

if stage "build (-Werror)" configure_and_build "$build"; then
    stage "tests (unit + integration)" run_suite "$build"
else
    skip "tests (unit + integration)" "build failed"
fi

if [ "${VDI_SKIP_SANITIZE:-0}" = 1 ] && [ "${CI:-}" != true ]; then
    skip "build (ASan+UBSan)" "VDI_SKIP_SANITIZE=1"
else
    # pam_wrapper is LD_PRELOADed ahead of the ASan runtime in the integration tests.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-verify_asan_link_order=0:detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    if stage "build (ASan+UBSan)" configure_and_build "$build_san" \
        -DVDI_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug; then
        stage "tests under ASan+UBSan" run_suite "$build_san"
    else
        skip "tests under ASan+UBSan" "build failed"
    fi
fi

printf '\n######## summary (%dm%02ds)\n' $((SECONDS / 60)) $((SECONDS % 60))
printf '  %s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
    echo "run-all: FAILED"
    exit 1
fi
echo "run-all: all passed"
