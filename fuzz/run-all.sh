#!/usr/bin/env bash
# Runs every fuzz target for MINUTES of wall time, PARALLEL at a time, each
# starting from its committed seeds (fuzz/seeds/<target>/) plus whatever
# fuzz/corpus/<target>/ already holds, and prints one summary line per
# target: executions, coverage (libFuzzer's cov/ft), corpus size, crashes.
# Crashes land in fuzz/artifacts/<target>/; each becomes a file under
# fuzz/regressions/<target>/ (replayed by tests/fuzz_regressions.rs).
#
# Usage: fuzz/run-all.sh [MINUTES] [PARALLEL] [TARGET...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
minutes="${1:-30}"; parallel="${2:-2}"; shift $(( $# > 2 ? 2 : $# )) || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' "$here/Cargo.toml" | grep -v '^apitap-fuzz$')
fi
mkdir -p "$here/logs"
cd "$here"
cargo +nightly fuzz build -O "${targets[@]:0:0}" >/dev/null
run_one() {
    t="$1"
    mkdir -p "corpus/$t" "artifacts/$t"
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time=$(( minutes * 60 )) -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        > "logs/$t.log" 2>&1 || true
}
export -f run_one; export minutes
printf '%s\n' "${targets[@]}" | xargs -P "$parallel" -I{} bash -c 'run_one {}'
printf '%-10s %14s %8s %8s %8s %8s\n' target executions exec/s cov ft crashes
for t in "${targets[@]}"; do
    log="logs/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
    printf '%-10s %14s %8s %8s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$crashes"
done
