#!/usr/bin/env bash
# Measures apitap on a large generator capture, for the figures the README and
# the issues report. Not a test: timings depend on the machine.
#
#   sudo ../shared/trafficgen/gen-traffic.sh large --out DIR --no-validate
#   scripts/measure-large.sh DIR [APITAP_BINARY]
#
# DIR holds large.pcap, large.truth.jsonl and large.truth.json. Prints
# throughput and peak memory of apitap and of `tcpdump -nn -r` on the same
# file, conformance per protocol, per-byte throughput on the HTTP/1-only and
# h2c-only parts, mid-stream pickup after removing the first 20% of packets,
# and the inventory scores.
set -euo pipefail
dir=${1:?usage: measure-large.sh DIR [APITAP]}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${2:-$here/target/release/apitap}
conf=$here/../shared/tools/conformance
pcap=$dir/large.pcap
work=$(mktemp -d "${TMPDIR:-/tmp}/apitap-measure.XXXXXX")
trap 'rm -rf "$work"' EXIT
size=$(stat -c %s "$pcap")

timed() { # label, command...: wall seconds, peak RSS
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" > /dev/null
    read -r secs kb < "$work/t"
    printf '%-34s %7.2f s  %7.1f MB/s  peak RSS %6.1f MB\n' "$label" "$secs" \
        "$(echo "$size_cur / 1000000 / $secs" | bc -l)" "$(echo "$kb / 1024" | bc -l)"
}

echo "capture: $pcap ($size bytes, $(capinfos -c -M "$pcap" | awk '/Number of packets/ {print $NF}') packets)"
cat "$pcap" > /dev/null  # page cache warm for every run alike
size_cur=$size
timed "tcpdump -nn -r" tcpdump -nn -r "$pcap"
timed "apitap replay (full analysis)" "$bin" replay --store "$work/s1" --stats-json "$work/stats.json" "$pcap"
timed "apitap replay --transactions" "$bin" replay --store "$work/s2" --transactions --events "$work/ev.jsonl" "$pcap"
for p in http1 h2; do
    printf 'conformance %-6s ' "$p"; python3 "$conf" --json --proto "$p" "$work/ev.jsonl" "$dir/large.truth.jsonl"; echo
done

echo "-- per byte: HTTP/1 (port 80) vs h2c (port 8081) parts"
tcpdump -r "$pcap" -w "$work/h1.pcap" 'tcp port 80' 2>/dev/null
tcpdump -r "$pcap" -w "$work/h2c.pcap" 'tcp port 8081' 2>/dev/null
for part in h1 h2c; do
    size_cur=$(stat -c %s "$work/$part.pcap")
    timed "apitap replay $part ($((size_cur / 1000000)) MB)" "$bin" replay --store "$work/s-$part" "$work/$part.pcap"
    rm -rf "$work/s-$part"
done
rm -f "$work/h1.pcap" "$work/h2c.pcap"

echo "-- mid-stream: first 20% of packets removed"
total=$(capinfos -c -M "$pcap" | awk '/Number of packets/ {print $NF}')
first=$((total / 5 + 1))
editcap -r "$pcap" "$work/cut.pcap" "$first-$total"
after=$(tshark -r "$work/cut.pcap" -c 1 -T fields -e frame.time_epoch)
"$bin" replay --store "$work/s3" --transactions --events "$work/cut.jsonl" "$work/cut.pcap" > /dev/null
for p in http1 h2; do
    printf 'mid-stream %-6s after %s ' "$p" "$after"
    python3 "$conf" --json --proto "$p" --keys method,path --after "$after" "$work/cut.jsonl" "$dir/large.truth.jsonl"; echo
done
rm -f "$work/cut.pcap"

echo "-- inventory against large.truth.json"
"$bin" dump --store "$work/s1" --format json > "$work/dump.json"
python3 "$here/scripts/inventory-score.py" "$work/dump.json" "$dir/large.truth.json" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: {a: b for a, b in v.items() if not isinstance(b, list)} for k, v in d.items()}))'
echo "-- replay summary"
cat "$work/stats.json"; echo
