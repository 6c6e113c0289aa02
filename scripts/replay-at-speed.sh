#!/usr/bin/env bash
# Replays a capture onto a veth pair with tcpreplay while `apitap capture`
# listens on the other end (inside a network namespace this script creates),
# and reports the packet rate reached and every drop apitap counted.
#
#   sudo scripts/replay-at-speed.sh PCAP [RATE...]
#
# RATE is "top" (tcpreplay --topspeed) or packets per second (--pps N);
# default: top. Needs root, iproute2 and tcpreplay. Not a test: rates depend
# on the machine. Example:
#   sudo scripts/replay-at-speed.sh /work/gen/large/large.pcap top 300000 200000 100000
set -euo pipefail
pcap=${1:?usage: replay-at-speed.sh PCAP [RATE...]}
shift
rates=("${@:-top}")
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${APITAP:-$here/target/release/apitap}
ns=apitap-speed-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/apitap-speed.XXXXXX")
cleanup() {
    [ -n "${cap:-}" ] && kill -TERM "$cap" 2>/dev/null || true
    ip link del apt-tx-$$ 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip link add "apt-tx-$$" type veth peer name apt-rx
ip link set apt-rx netns "$ns"
ip link set "apt-tx-$$" up
ip netns exec "$ns" ip link set apt-rx up
echo "capture: $pcap"
printf '%-8s %10s %10s %12s %12s %12s %14s\n' rate sent_pps secs kernel_drops queue_drops if_drops transactions
for rate in "${rates[@]}"; do
    rm -rf "$work/store" "$work/stats.json"
    ip netns exec "$ns" "$bin" capture -i apt-rx --store "$work/store" --stats-json "$work/stats.json" 2> "$work/cap.log" &
    cap=$!
    for _ in $(seq 100); do grep -q "capturing on" "$work/cap.log" && break; sleep 0.1; done
    if [ "$rate" = top ]; then speed=(--topspeed); else speed=(--pps "$rate"); fi
    out=$(tcpreplay -i "apt-tx-$$" "${speed[@]}" "$pcap" 2>&1)
    sleep 2
    kill -TERM "$cap"; wait "$cap" || true; cap=
    pps=$(echo "$out" | awk '/Rated:/ {for (i=1;i<=NF;i++) if ($i ~ /pps/) print $(i-1)}' | head -1)
    secs=$(echo "$out" | awk '/Actual:/ {for (i=1;i<=NF;i++) if ($i == "seconds") print $(i-1)}' | head -1)
    python3 - "$work/stats.json" "$rate" "$pps" "$secs" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c = s.get("capture", {})
print(f"{sys.argv[2]:<8} {sys.argv[3]:>10} {sys.argv[4]:>10} {c.get('kernel_dropped', 0):>12} "
      f"{s['drops_by_limit'].get('pipeline.reader_batches_dropped', 0):>12} {c.get('interface_dropped', 0):>12} {s['transactions']:>14}")
PY
done
