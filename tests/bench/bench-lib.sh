# bench-lib.sh: what the run-*bench.sh scripts share, sourced right after their
# `set -uo pipefail`: the build and image defaults, the end-to-end harness
# (tests/integration/e2e/lib.sh), tests/bench/vdi-bench-client and small helpers.
# Environment: VDI_BUILD_DIR (default build-bench), VDI_IMAGE_DIR (default
# build/tests/image when it exists), VDI_BENCH_CLIENT.
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$BENCH_DIR/../.." && pwd)
export VDI_BUILD_DIR=${VDI_BUILD_DIR:-$SRC/build-bench}
if [ -z "${VDI_IMAGE_DIR:-}" ] && [ -f "$SRC/build/tests/image/disk.img" ]; then
    export VDI_IMAGE_DIR=$SRC/build/tests/image
fi
BENCH_CLIENT=${VDI_BENCH_CLIENT:-$VDI_BUILD_DIR/tests/bench/vdi-bench-client}

# shellcheck source=../integration/e2e/lib.sh
source "$SRC/tests/integration/e2e/lib.sh"
[ -x "$BENCH_CLIENT" ] || { echo "build $BENCH_CLIENT first (tests/bench/README.md)" >&2; exit 1; }

# bench USER[@POOL] [ARGS...]: one timed login; its output in $T/logs/bench.log and stdout.
bench() {
    local u=$1
    shift
    "$BENCH_CLIENT" "127.0.0.1:$PORT" --ca "$CA" --user "$u" --password "$(password "${u%@*}")" \
        "$@" 2>>"$T/logs/bench.err" | tee -a "$T/logs/bench.log"
    return "${PIPESTATUS[0]}"
}
# field NAME OUTPUT: the value of vdi-bench-client's "NAME: value" line.
field() { sed -n "s/^$1: //p" <<<"$2"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# log_ms LINE: the broker log line's time stamp in ms since the epoch.
log_ms() { date -d "$(cut -c1-23 <<<"$1" | tr T ' ')" +%s%3N; }
