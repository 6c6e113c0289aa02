#!/usr/bin/env bash
# Extracts fuzz seeds from the project's captures into fuzz/corpus/<target>/
# (git-ignored), and with --curate also rewrites the small committed set
# fuzz/seeds/<target>/ (at most 50 files and 200 KB per target).
#
# Sources: fixtures/sample.pcap, the capture corpus in ../shared/corpus/dev
# (when present), and the hpack-test-case stories shipped in the httlib-hpack
# package of the cargo registry (when present).
#
# Needs tshark, editcap (Debian package tshark) and python3.
#
# Usage: fuzz/seed.sh [--curate]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
curate=0
[ "${1:-}" = "--curate" ] && curate=1
for tool in tshark editcap python3; do
    command -v "$tool" >/dev/null || { echo "seed.sh: $tool is needed (apt-get install tshark python3)" >&2; exit 1; }
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

captures=("$root/fixtures/sample.pcap")
if [ -d "$root/../shared/corpus/dev" ]; then
    while IFS= read -r f; do captures+=("$f"); done < <(find "$root/../shared/corpus/dev" -maxdepth 1 \( -name '*.pcap' -o -name '*.pcapng' \) | sort)
fi

# Per capture: the frames as classic pcap, and one line per TCP segment.
n=0
for cap in "${captures[@]}"; do
    n=$((n + 1))
    name="$(basename "$cap")"; name="${name%.*}"
    base="$tmp/$(printf '%03d' "$n")_$name"
    editcap -F pcap "$cap" "$base.pcap" 2>/dev/null || { echo "seed.sh: skipping $cap (not convertible to pcap)" >&2; continue; }
    tshark -n -r "$cap" -T fields -E separator=/t -e frame.protocols -e ip.flags.mf -e ip.frag_offset -e ipv6.fraghdr.offset \
        > "$base.protocols" 2>/dev/null || true
    tshark -n -r "$cap" -Y tcp -T fields -E separator=/t \
        -e frame.number -e frame.time_epoch -e tcp.stream -e ip.src -e ipv6.src -e tcp.srcport \
        -e tcp.seq -e tcp.seq_raw -e tcp.ack_raw -e tcp.flags -e tcp.payload -e tcp.analysis.retransmission \
        > "$base.tcp" 2>/dev/null || true
done

stories=""
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
for d in "$cargo_home"/registry/src/*/httlib-hpack-*/fixtures; do
    [ -d "$d" ] && stories="$d"
done

python3 - "$tmp" "$here" "$curate" "$stories" <<'PY'
import glob, hashlib, json, os, struct, sys

tmp, fuzz, curate, stories = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]

# Must match LINK_TYPES in fuzz/harness.rs.
LINK_TYPES = [1, 0, 108, 101, 12, 14, 228, 229, 113, 276, 239, 147]
# Must match TABLE_SIZES in fuzz/harness.rs (hpack target).
TABLE_SIZES = [0, 1, 31, 64, 256, 4096, 65536, 1 << 31]
TARGETS = ["decode", "defrag", "flow", "http1", "http2", "hpack"]

seeds = {t: [] for t in TARGETS}  # (name, bytes)


def add(target, name, data):
    seeds[target].append((name, bytes(data)))


def read_pcap(path):
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 24:
        return None, []
    magic = b[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None, []
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack(e + "I", b[20:24])[0] & 0x0FFFFFFF
    frames, off = [], 24
    while off + 16 <= len(b):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", b[off:off + 16])
        off += 16
        frames.append((sec * 1_000_000 + (frac // 1000 if nano else frac), b[off:off + incl]))
        off += incl
    return link, frames


def u16(n):
    return struct.pack(">H", min(n, 0xFFFF))


def dt_ms(prev, cur):
    return max(0, min(255, (cur - prev) // 1000)) if prev is not None else 0


# ---- per capture -----------------------------------------------------------
streams_h1, streams_h2 = [], []
for pcap in sorted(glob.glob(os.path.join(tmp, "*.pcap"))):
    base = pcap[:-5]
    cap = os.path.basename(base).split("_", 1)[1]
    link, frames = read_pcap(pcap)
    if link is None or link not in LINK_TYPES:
        continue
    sel = LINK_TYPES.index(link)
    protos, is_frag = [], []
    try:
        for ln in open(base + ".protocols").read().splitlines():
            c = (ln.split("\t") + ["", "", "", ""])[:4]
            protos.append(c[0])
            is_frag.append("1" in c[1].split(",") or any(v not in ("", "0") for v in c[2].split(",") + c[3].split(",")) or "ipv6.fraghdr" in c[0])
    except OSError:
        pass

    # decode: one frame per distinct protocol stack.
    seen = set()
    for i, (_, fr) in enumerate(frames):
        p = protos[i] if i < len(protos) else ""
        if p in seen:
            continue
        seen.add(p)
        add("decode", f"{cap}-{i + 1}", bytes([sel]) + fr)

    # defrag: the capture's frames as raw records, when it holds IP fragments.
    # defrag: the capture's IP fragments as raw records (with their
    # timing), and the whole capture.
    if any(is_frag):
        frag = [i for i in range(len(frames)) if i < len(is_frag) and is_frag[i]]
        for tag, keep in (("fragments", set(frag)), ("fragments-head", set(frag[:12])), ("all", None)):
            out, prev = bytearray([0]), None
            for i, (ts, fr) in enumerate(frames[:400]):
                if keep is None or i in keep:
                    out += bytes([0x80 | sel, dt_ms(prev, ts)]) + u16(len(fr)) + fr[:0xFFFF]
                    prev = ts
            add("defrag", f"{cap}-{tag}", out)

    # TCP segments, from tshark's view.
    rows = []
    try:
        lines = open(base + ".tcp").read().splitlines()
    except OSError:
        lines = []
    for ln in lines:
        c = ln.split("\t")
        if len(c) < 12 or any("," in c[k] for k in (2, 5, 6, 7, 8, 9)):
            continue
        try:
            rows.append({
                "ts": int(float(c[1]) * 1_000_000),
                "stream": int(c[2]),
                "src": (c[3] or c[4]).split(",")[-1] + ":" + c[5],
                "rel": int(c[6]),
                "seq": int(c[7]),
                "ack": int(c[8]),
                "flags": int(c[9], 16) & 0xFF,
                "payload": bytes.fromhex(c[10].replace(":", "")) if c[10] else b"",
                "retx": c[11] != "",
            })
        except ValueError:
            continue
    by_stream = {}
    for r in rows:
        by_stream.setdefault(r["stream"], []).append(r)

    for sid, segs in sorted(by_stream.items()):
        first = segs[0]["src"]
        syn = [s for s in segs if s["flags"] & 0x02]
        client = first
        if syn:
            client = syn[0]["src"] if not syn[0]["flags"] & 0x10 else next((s["src"] for s in segs if s["src"] != syn[0]["src"]), first)
        # flow: the segments as absolute records on endpoint pair 0.
        out, prev, total = bytearray([0, 0]), None, 0
        for s in segs:
            back = s["src"] != client
            p = s["payload"][:0xFFFF]
            out += bytes([0x08 | 0x10 | (0x04 if back else 0), s["flags"]])
            out += struct.pack(">II", s["seq"], s["ack"]) + bytes([dt_ms(prev, s["ts"])]) + u16(len(p)) + p
            prev = s["ts"]
            total += len(p)
            if len(out) > 256 * 1024:
                break
        add("flow", f"{cap}-s{sid}", out)

        # The two byte streams, in sequence order, up to the first hole.
        dirs = {}
        for d in (True, False):
            ss = sorted((s for s in segs if (s["src"] == client) == d and s["payload"]), key=lambda s: s["rel"])
            buf, end = bytearray(), None
            for s in ss:
                if end is None:
                    end = s["rel"]
                if s["rel"] > end:
                    break
                skip = end - s["rel"]
                if skip < len(s["payload"]):
                    buf += s["payload"][skip:]
                    end = s["rel"] + len(s["payload"])
            dirs[d] = bytes(buf)
        req, resp = dirs[True], dirs[False]
        # The segments as they came, for the HTTP/2 target.
        ordered = [(s["src"] != client, s["payload"]) for s in segs if s["payload"] and not s["retx"]]
        h2ish = req.startswith(b"PRI * HTTP/2.0") or resp[3:4] == b"\x04" or any(k in cap for k in ("http2", "grpc", "h2"))
        h1ish = resp.startswith(b"HTTP/") or req[:8].split(b" ")[0].isalpha()
        if h1ish:
            streams_h1.append((f"{cap}-s{sid}", req, resp))
        if h2ish:
            streams_h2.append((f"{cap}-s{sid}", req, resp, ordered, not syn))

# ---- http1 -----------------------------------------------------------------
for name, req, resp in streams_h1:
    req, resp = req[:0xFFFF], resp[:128 * 1024]
    add("http1", name, bytes([0, 0]) + u16(len(req)) + req + resp)
    # The same, cut into small pieces alternating sides, with a gap.
    steps = bytes([3, 0x83, 5, 0x81, 0, 2, 0x82, 0x7f]) * 4
    gaps = bytes([9])
    add("http1", name + "-cut", bytes([0x04, len(steps)]) + steps + gaps + u16(len(req)) + req + resp)

# ---- http2 -----------------------------------------------------------------
def h2_blocks(data, preface):
    """Header blocks (HEADERS/PUSH_PROMISE + CONTINUATION) in a frame stream."""
    pos = 24 if preface and data.startswith(b"PRI * HTTP/2.0") else 0
    blocks, cur = [], None
    while pos + 9 <= len(data):
        ln = int.from_bytes(data[pos:pos + 3], "big")
        typ, fl = data[pos + 3], data[pos + 4]
        p = data[pos + 9:pos + 9 + ln]
        if len(p) < ln:
            break
        pos += 9 + ln
        if typ in (1, 5):
            pad = 0
            if fl & 0x08 and p:
                pad, p = p[0], p[1:]
            if typ == 1 and fl & 0x20:
                p = p[5:]
            if typ == 5:
                p = p[4:]
            p = p[:len(p) - pad] if pad <= len(p) else b""
            cur = bytearray(p)
            if fl & 0x04:
                blocks.append(bytes(cur))
                cur = None
        elif typ == 9 and cur is not None:
            cur += p
            if fl & 0x04:
                blocks.append(bytes(cur))
                cur = None
    return blocks


for name, req, resp, ordered, midstream in streams_h2:
    out = bytearray([1 if midstream else 0])
    for back, p in ordered:
        out += bytes([1 if back else 0]) + u16(len(p)) + p[:0xFFFF]
        if len(out) > 256 * 1024:
            break
    add("http2", name, out)
    for d, data in (("c", req), ("s", resp)):
        blocks = h2_blocks(data, d == "c")
        if not blocks:
            continue
        mode = (5 << 1) | (3 << 4)  # table 4096, memory cap 65536
        recs = [b"\x00" + u16(len(b)) + b for b in blocks[:500]]
        add("hpack", f"{name}-{d}", bytes([mode]) + b"".join(recs))
        # Joined half-way: a mid-stream decoder on the later blocks.
        add("hpack", f"{name}-{d}-midstream", bytes([mode | 1]) + b"".join(recs[len(recs) // 2:]))

# ---- hpack: the hpack-test-case stories ------------------------------------
if stories:
    for path in sorted(glob.glob(os.path.join(stories, "*", "story_*.json"))):
        imp, story = path.split(os.sep)[-2], os.path.basename(path)[:-5]
        try:
            cases = json.load(open(path))["cases"]
        except (OSError, ValueError, KeyError):
            continue
        mode = (5 << 1) | (3 << 4)
        out = bytearray([mode])
        for c in cases:
            wire = bytes.fromhex(c["wire"])
            op = 0
            hts = c.get("header_table_size")
            if hts is not None:
                idx = next((i for i, s in enumerate(TABLE_SIZES) if s >= hts), len(TABLE_SIZES) - 1)
                op = 1 | (idx << 1)
            out += bytes([op]) + u16(len(wire)) + wire
        add("hpack", f"story-{imp}-{story}", out)

# ---- defrag: synthetic fragment trains -------------------------------------
def tcp_http_segment():
    body = b"GET /frag/test HTTP/1.1\r\nHost: example\r\nX-Pad: " + b"p" * 60 + b"\r\n\r\n"
    return struct.pack(">HHIIBBHHH", 40000, 80, 1000, 0, 0x50, 0x18, 65535, 0, 0) + body


def frag_record(v6, more, offset8, ident, payload, dt=0, swap=False):
    op = (1 if v6 else 0) | (2 if more else 0) | (4 if swap else 0)
    return bytes([op]) + u16(ident) + u16(offset8) + bytes([dt]) + u16(len(payload)) + payload


seg = tcp_http_segment()
for v6 in (False, True):
    parts = [seg[0:24], seg[24:48], seg[48:]]
    offs = [0, 3, 6]
    recs = [frag_record(v6, i < 2, offs[i], 7, parts[i]) for i in range(3)]
    tag = "v6" if v6 else "v4"
    add("defrag", f"synthetic-{tag}-in-order", bytes([0]) + b"".join(recs))
    add("defrag", f"synthetic-{tag}-reversed", bytes([0]) + b"".join(reversed(recs)))
    # Overlap (the second fragment again, shifted by 8 bytes) and a duplicate.
    ov = frag_record(v6, True, 4, 7, seg[32:56])
    add("defrag", f"synthetic-{tag}-overlap", bytes([0]) + recs[0] + ov + recs[1] + recs[1] + recs[2])
    # Tight limits: two datagrams interleaved, one timing out.
    other = [frag_record(v6, i < 2, offs[i], 8, parts[i], dt=200) for i in range(3)]
    add("defrag", f"synthetic-{tag}-limits", bytes([0x80 | 0x01 | (1 << 4)]) + recs[0] + other[0] + recs[1] + other[1] + recs[2] + other[2])

# ---- write -----------------------------------------------------------------
def write_dir(d, items):
    os.makedirs(d, exist_ok=True)
    for name, data in items:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:120]
        with open(os.path.join(d, safe), "wb") as f:
            f.write(data)


for t in TARGETS:
    uniq, hashes = [], set()
    for name, data in seeds[t]:
        h = hashlib.sha1(data).hexdigest()
        if h not in hashes:
            hashes.add(h)
            uniq.append((name, data))
    seeds[t] = uniq
    write_dir(os.path.join(fuzz, "corpus", t), uniq)
    print(f"corpus/{t}: {len(uniq)} seeds, {sum(len(d) for _, d in uniq)} bytes")

if curate:
    MAX_FILES, MAX_BYTES, MAX_FILE = 50, 200 * 1024, 24 * 1024
    for t in TARGETS:
        d = os.path.join(fuzz, "seeds", t)
        if os.path.isdir(d):
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))
        # Round-robin over source captures, smallest first, so every source
        # that fits is represented once before any gets a second file.
        groups = {}
        for name, data in sorted(seeds[t], key=lambda s: (len(s[1]), s[0])):
            if len(data) <= MAX_FILE:
                groups.setdefault(name.split("-s")[0].split("-")[0], []).append((name, data))
        picked, total = [], 0
        while len(picked) < MAX_FILES and any(groups.values()):
            for g in sorted(groups):
                if groups[g] and len(picked) < MAX_FILES:
                    name, data = groups[g].pop(0)
                    if total + len(data) <= MAX_BYTES:
                        picked.append((name, data))
                        total += len(data)
        write_dir(d, picked)
        print(f"seeds/{t}: {len(picked)} files, {total} bytes")
PY
