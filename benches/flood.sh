#!/usr/bin/env bash
# Memory per tracked flow and per open transaction, measured: writes two
# synthetic captures and replays each at several flow limits, printing peak
# RSS, the limit counters and the slope (bytes per flow) between limits.
#
#   benches/flood.sh [--bin APITAP] [--workers N]
#
#  1. SYN flood: 1,000,000 half-open connections (one SYN each).
#  2. Unanswered requests: 100,000 connections, each a handshake and one
#     HTTP/1.1 GET with a 200-byte header block that is never answered.
# The defaults of sensor.toml apply except flow.max_flows.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/target/release/apitap
workers=2
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "flood.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "flood.sh: $bin not found; run cargo build --release first" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/apitap-flood.XXXXXX")
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'EOF'
import struct, sys
out = sys.argv[1]

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def frame(src, sport, dst, dport, seq, ack, flags, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp

def write(name, frames):
    with open(f"{out}/{name}", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            ts = 1_700_000_000_000_000 + i  # 1 µs apart: no flow times out
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(fr), len(fr)))
            f.write(fr)

server = bytes([10, 9, 0, 1])
def client(i): return bytes([10, 128 + (i >> 16) % 64, (i >> 8) & 255, i & 255]), 1024 + (i * 7) % 60000

write("syn.pcap", (frame(*client(i), server, 80, i, 0, 0x02) for i in range(1_000_000)))

get = (b"GET /api/v1/items/12345?page=2 HTTP/1.1\r\nHost: api.flood.test\r\nUser-Agent: flood/1.0\r\n"
       b"Accept: application/json\r\nAuthorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789\r\nX-Request-Id: 0000\r\n\r\n")
def open_requests(n):
    for i in range(n):
        c, p = client(i)
        yield frame(c, p, server, 80, 1000, 0, 0x02)
        yield frame(server, 80, c, p, 5000, 1001, 0x12)
        yield frame(c, p, server, 80, 1001, 5001, 0x10)
        yield frame(c, p, server, 80, 1001, 5001, 0x18, get)
write("requests.pcap", open_requests(100_000))
EOF

run() { # capture, max_flows -> "rss_kib evicted created transactions parser_peak_bytes parser_limit_hit"
    printf '[flow]\nmax_flows = %s\n' "$2" >"$work/sensor.toml"
    rm -rf "$work/store"
    /usr/bin/time -f "%M" -o "$work/rss" "$bin" replay --no-progress --workers "$workers" --config "$work/sensor.toml" \
        --store "$work/store" --stats-json "$work/stats.json" "$work/$1" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    python3 - "$work/stats.json" "$(cat "$work/rss")" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
f = s.get("flow", {})
h = s.get("http", {})
print(sys.argv[2], f.get("flows_evicted_limit", 0), f.get("flows_created", 0), s.get("transactions", 0),
      h.get("parser_bytes_peak", 0), h.get("parser_bytes_limit_hit", 0))
EOF
}

echo "apitap $("$bin" --version 2>/dev/null | awk '{print $2}'), $workers worker(s); defaults except flow.max_flows"
for cap in syn.pcap requests.pcap; do
    echo "== $cap"
    printf '%12s %12s %12s %12s %14s %14s %12s\n' max_flows "peak RSS" evicted flows "bytes/flow*" "parser peak" "shed"
    prev=""
    for mf in 16384 65536 131072; do
        read -r kb ev cr tx pp ph < <(run "$cap" "$mf")
        slope=-
        if [ -n "$prev" ]; then
            read -r pmf pkb <<<"$prev"
            slope=$(( (kb - pkb) * 1024 / (mf - pmf) ))
        fi
        printf '%12s %9.1f MiB %12s %12s %14s %10.1f MiB %12s\n' "$mf" "$(echo "$kb / 1024" | bc -l)" "$ev" "$cr" "$slope" "$(echo "$pp / 1048576" | bc -l)" "$ph"
        prev="$mf $kb"
    done
done
echo "* growth of peak RSS per extra tracked flow between this limit and the one above"
echo "  (for requests.pcap: a connection holding one unanswered request)"
echo "  parser peak: the most the protocol parsers held (summed over the workers;"
echo "  bounded by http.max_parser_bytes_total); shed: connections that grew past"
echo "  it and freed what they held (parser_bytes_limit_hit)"
