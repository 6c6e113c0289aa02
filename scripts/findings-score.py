#!/usr/bin/env python3
"""Scores `apitap findings --format json` against a trafficgen truth file.

usage: findings-score.py FINDINGS.json TRUTH.json

Prints, per kind, precision and recall: shadow_api / zombie_api by endpoint
against the truth's undocumented / deprecated endpoints; every attack of
`attacks[]` found (its kind, naming its client, detected inside the
observed window with 60 s slack before and 300 s after); and attack
findings that name a client the truth does not list as an attacker.
Exit 0 when everything matches, 1 otherwise.
"""
import json, re, sys

def norm(p):
    return re.sub(r"\{[^}]*\}", "{}", p)

fs = json.load(open(sys.argv[1]))
t = json.load(open(sys.argv[2]))
ok = True
key = lambda e: (e["host"], e["method"], norm(e["path"]))
obs = lambda e: e["observed"]["requests"] > 0
for kind, want in (("shadow_api", {key(e) for e in t["endpoints"] if not e["documented"] and obs(e)}),
                   ("zombie_api", {key(e) for e in t["endpoints"] if e["deprecated"] and obs(e)})):
    got = {key(f) for f in fs if f["kind"] == kind}
    tp = len(want & got)
    p = tp / len(got) if got else 1.0
    r = tp / len(want) if want else 1.0
    print(f"{kind:22} precision {p:.3f} recall {r:.3f}  truth {sorted(want)} found {sorted(got)}")
    ok &= want == got
plain = lambda e: e["observed"]["by_protocol"].get("http1", 0) + e["observed"]["by_protocol"].get("h2c", 0) > 0
for kind, rule in (("unauthenticated_sensitive_data", lambda e: e["auth"] == "none" and set(e["resp_sensitive"]) - {"jwt"}),
                   ("basic_auth_cleartext", lambda e: e["auth"] == "basic"),
                   ("credentials_in_url", lambda e: e["auth"] == "api_key_query")):
    want = {key(e) for e in t["endpoints"] if plain(e) and rule(e)}
    got = {key(f) for f in fs if f["kind"] == kind}
    tp = len(want & got)
    print(f"{kind:30} precision {tp / len(got) if got else 1.0:.3f} recall {tp / len(want) if want else 1.0:.3f} (truth {len(want)}, found {len(got)})")
    ok &= want == got
attackers = {ip for a in t["attacks"] for ip in a["client_ips"]}
for a in t["attacks"]:
    ips = set(a["client_ips"])
    lo, hi = a["observed_window"]["start"] - 60, a["observed_window"]["end"] + 300
    hits = [f for f in fs if f["kind"] == a["type"] and lo <= f["detected_us"] / 1e6 <= hi
            and (f.get("actor_ip") in ips or ips & set(f["clients"]))]
    d = f"detected {hits[0]['detected_us'] / 1e6 - a['observed_window']['start']:+.1f} s from window start" if hits else "MISSED"
    print(f"attack {a['type']:22} from {sorted(ips)}: {d}")
    ok &= bool(hits)
kinds = sorted({f["kind"] for f in fs if f["class"] == "detection_finding"})
for k in kinds:
    n = [f for f in fs if f["kind"] == k and f["class"] == "detection_finding"]
    good = [f for f in n if f.get("actor_ip") in attackers]
    print(f"{k:22} attack findings {len(n)}, naming an attacker {len(good)} (precision {len(good) / len(n):.3f})")
    ok &= len(good) == len(n)
print("ok" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
