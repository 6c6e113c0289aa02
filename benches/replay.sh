#!/usr/bin/env bash
# Replay benchmark: apitap on a large generator capture with 1 and 2 workers,
# next to `tcpdump -r -w /dev/null` and tshark on the same file in the same
# run. Prints, per tool, the median of RUNS runs (min and max beside it) of
# wall time, CPU time, MB/s, Gbit/s, packets/s, transactions/s, MB per
# CPU-second and peak RSS, and apitap's ratios to the peers.
#
#   benches/replay.sh [--dir DIR] [--runs N] [--tshark-runs N] [--bin APITAP] [--workers "1 2"]
#
# DIR (default /var/tmp/apitap-large) holds large.pcap; when it does not,
# the capture is made with ../shared/trafficgen/gen-traffic.sh large (root,
# network namespaces, about 6 minutes; not committed). APITAP defaults to
# target/release/apitap (built with `cargo build --release`). Every apitap
# run uses the defaults of sensor.toml (inventory, templating, auth,
# sensitive-data scanning and detectors on) with a fresh store.
# tshark dissects HTTP/1.1 and HTTP/2 (one run by default: it takes minutes
# and gigabytes; --tshark-runs 0 skips it). The figures depend on the machine;
# benches/README.md records the ones measured here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=/var/tmp/apitap-large
runs=3
tshark_runs=1
bin=$here/target/release/apitap
workers_list="1 2"
while [ $# -gt 0 ]; do
    case $1 in
        --dir) dir=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --tshark-runs) tshark_runs=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --workers) workers_list=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "replay.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "replay.sh: $bin not found; run cargo build --release first" >&2; exit 1; }
pcap=$dir/large.pcap
if [ ! -f "$pcap" ]; then
    gen=$here/../shared/trafficgen/gen-traffic.sh
    [ -x "$gen" ] || { echo "replay.sh: no $pcap and no $gen to make it" >&2; exit 1; }
    [ "$(id -u)" -eq 0 ] || { echo "replay.sh: making the capture needs root (network namespaces); run as root or give --dir" >&2; exit 1; }
    echo "making $pcap with gen-traffic.sh large (about 6 minutes)..."
    "$gen" large --out "$dir" --no-validate >"$dir.gen.log" 2>&1 || { echo "replay.sh: gen-traffic.sh failed; see $dir.gen.log" >&2; exit 1; }
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/apitap-bench.XXXXXX")
locker=
trap 'rm -rf "$work"; [ -n "$locker" ] && kill "$locker" 2>/dev/null' EXIT
size=$(stat -L -c %s "$pcap")
frames=$(capinfos -c -M "$pcap" 2>/dev/null | awk '/Number of packets/ {print $NF}')
cat "$pcap" >/dev/null # page cache warm for every run alike
# Every tool reads the file from the page cache. Where the kernel reclaims
# cold page-cache pages on its own (e.g. DAMON's pageout on virtual
# machines), parts of the file would otherwise be read from disk again
# between runs: with vmtouch installed, the file stays locked in memory for
# the benchmark (its memory is vmtouch's, not the tools').
if command -v vmtouch >/dev/null 2>&1; then
    vmtouch -q -dl -P "$work/vmtouch.pid" "$pcap" && sleep 1 && locker=$(cat "$work/vmtouch.pid" 2>/dev/null)
    echo "page cache: $pcap locked in memory by vmtouch (pid ${locker:-?})"
else
    echo "page cache: warmed once (install vmtouch to keep the file resident between runs)"
fi
echo "capture: $pcap, $size bytes, ${frames:-?} frames"
echo "machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "apitap: $("$bin" --version 2>/dev/null || echo "$bin")"

# one run: prints "wall cpu rss_kb transactions"
run_once() { # out-file, command...
    local out=$1; shift
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$@" >"$work/stdout" 2>"$work/stderr" || {
        echo "replay.sh: failed: $*" >&2; tail -5 "$work/stderr" >&2; exit 1; }
    read -r wall user sys kb <"$work/t"
    echo "$wall $(echo "$user + $sys" | bc -l) $kb" >>"$out"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v c="$2" '{print $c}' "$1"; }

# summary line: label, results-file, transactions
summarise() {
    local label=$1 f=$2 tx=$3
    local wall cpu kb wmin wmax
    wall=$(col "$f" 1 | median); cpu=$(col "$f" 2 | median); kb=$(col "$f" 3 | median)
    wmin=$(col "$f" 1 | sort -n | head -1); wmax=$(col "$f" 1 | sort -n | tail -1)
    printf '%-26s %7.2f s (%5.2f-%5.2f) %7.2f CPU-s %8.1f MB/s %6.2f Gbit/s %9.0f pkt/s %9s tx/s %7.1f MB/CPU-s %7.1f MiB\n' \
        "$label" "$wall" "$wmin" "$wmax" "$cpu" \
        "$(echo "$size / 1000000 / $wall" | bc -l)" "$(echo "$size * 8 / 1000000000 / $wall" | bc -l)" \
        "$(echo "${frames:-0} / $wall" | bc -l)" \
        "$( [ "$tx" -gt 0 ] 2>/dev/null && printf '%.0f' "$(echo "$tx / $wall" | bc -l)" || echo -)" \
        "$(echo "$size / 1000000 / $cpu" | bc -l)" "$(echo "$kb / 1024" | bc -l)"
    echo "$label $wall $cpu" >>"$work/summary"
}

printf '%-26s %24s %13s %13s %13s %13s %15s %18s %11s\n' tool "wall (min-max)" CPU throughput "" packets transactions per-CPU-second "peak RSS"
for i in $(seq "$runs"); do run_once "$work/tcpdump" tcpdump -nn -r "$pcap" -w /dev/null; done
summarise "tcpdump -r -w /dev/null" "$work/tcpdump" 0
for w in $workers_list; do
    tx=0
    for i in $(seq "$runs"); do
        rm -rf "$work/store"
        run_once "$work/apitap$w" "$bin" replay --workers "$w" --store "$work/store" --stats-json "$work/stats.json" "$pcap"
        tx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["transactions"])' "$work/stats.json" 2>/dev/null || echo 0)
    done
    summarise "apitap replay, $w worker(s)" "$work/apitap$w" "$tx"
done
if [ "$tshark_runs" -gt 0 ] && command -v tshark >/dev/null; then
    for i in $(seq "$tshark_runs"); do
        run_once "$work/tshark" tshark -n -r "$pcap" -Y "http.request or http2.type == 1" -T fields -e frame.number
    done
    summarise "tshark (HTTP + HTTP/2)" "$work/tshark" 0
fi
echo
echo "ratios: time of the peer / time of apitap (medians; above 1: apitap is faster):"
awk '
    { n = $0; sub(/ [^ ]+ [^ ]+$/, "", n); w[n] = $(NF-1); c[n] = $NF; order[++k] = n }
    END {
        for (i = 1; i <= k; i++) if (order[i] ~ /^apitap/)
            for (j = 1; j <= k; j++) if (order[j] !~ /^apitap/)
                printf "  %-26s vs %-26s  wall %6.2f, CPU %6.2f\n", order[i], order[j], w[order[j]] / w[order[i]], c[order[j]] / c[order[i]]
        if (("apitap replay, 1 worker(s)" in w) && ("apitap replay, 2 worker(s)" in w))
            printf "  scaling 1 -> 2 workers: %.2fx\n", w["apitap replay, 1 worker(s)"] / w["apitap replay, 2 worker(s)"]
    }' "$work/summary"
echo "Suricata 8 on the same kind of capture and machine (the issue's reference): 28 s wall / 20 CPU-s single-threaded, 23 s with 2 workers (about 51 MB per CPU-second)."
