#!/usr/bin/env python3
"""Score an apitap inventory against a trafficgen ground truth.

usage: inventory-score.py DUMP.json TRUTH.json

DUMP.json is `apitap dump --format json`; TRUTH.json is the generator's
`NAME.truth.json`. Prints, as one JSON object, the figures of the inventory
acceptance: template recall among endpoints that carried plaintext traffic,
template precision among dumped endpoints that answered 2xx/3xx, duplicates,
the share of endpoints whose truth auth scheme is reported (only `none` when
the truth is `none`), and response sensitive-kind recall with the endpoints
that report kinds where the truth has none. Parameter names are ignored.
"""
import json
import re
import sys


def norm(path):
    return re.sub(r"\{[^}]*\}", "{}", path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    dump = json.load(open(sys.argv[1]))
    truth = json.load(open(sys.argv[2]))
    t, plaintext = {}, []
    for e in truth["endpoints"]:
        k = (e["host"], e["method"], norm(e["path"]))
        bp = e.get("observed", {}).get("by_protocol", {})
        if bp.get("http1", 0) + bp.get("h2c", 0) > 0:
            plaintext.append(k)
        t[k] = e
    dumped, dups = {}, []
    for e in dump:
        k = (e["host"], e["method"], norm(e["path"]))
        if k in dumped:
            dups.append(k)
        dumped[k] = e
    found = [k for k in plaintext if k in dumped]
    answered = [k for k, e in dumped.items() if any(s[0] in "23" for s in e["statuses"])]
    extra = [k for k in answered if k not in t]
    auth_ok, auth_bad = 0, []
    for k in found:
        want, got = t[k]["auth"], dumped[k]["auth"]
        ok = got == ["none"] if want == "none" else want in got
        auth_ok += ok
        if not ok:
            auth_bad.append({"endpoint": k, "truth": want, "dumped": got})
    tp = total = 0
    false_kinds, missed, extra_kinds = [], [], []
    for k in found:
        want = set(t[k].get("resp_sensitive", []))
        got = set(dumped[k].get("response_sensitive", []))
        total += len(want)
        tp += len(want & got)
        if want - got:
            missed.append({"endpoint": k, "missed": sorted(want - got)})
        if not want and got:
            false_kinds.append({"endpoint": k, "dumped": sorted(got)})
        elif got - want:
            extra_kinds.append({"endpoint": k, "extra": sorted(got - want)})
    out = {
        "templates": {"plaintext_truth": len(plaintext), "found": len(found),
                      "recall": len(found) / max(1, len(plaintext)),
                      "answered": len(answered), "in_truth": len(answered) - len(extra),
                      "precision": (len(answered) - len(extra)) / max(1, len(answered)),
                      "not_in_truth": extra, "duplicates": dups,
                      "missed": [k for k in plaintext if k not in dumped]},
        "auth": {"ok": auth_ok, "of": len(found), "share": auth_ok / max(1, len(found)), "wrong": auth_bad},
        "response_sensitive": {"found": tp, "of": total, "recall": tp / max(1, total),
                               "kinds_where_truth_has_none": false_kinds, "missed": missed,
                               "extra_kinds_on_endpoints_with_data": extra_kinds},
    }
    json.dump(out, sys.stdout, indent=1)
    print()


main()
