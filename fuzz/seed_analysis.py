#!/usr/bin/env python3
"""Writes the committed seeds of the analysis targets (auth, bodies,
template, analyze) in the input formats of fuzz/harness.rs, from
hand-written transactions and the paths of fixtures/sample.truth.jsonl.

usage: python3 fuzz/seed_analysis.py
"""
import base64, gzip, json, os, struct, zlib

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
NAMES = ["authorization", "cookie", "x-api-key", "content-type", "content-encoding", "origin", "set-cookie",
         "access-control-allow-origin", "access-control-allow-credentials", "proxy-authorization", "x-auth-token",
         "transfer-encoding", "x-forwarded-for", "user-agent", "api-key", "forwarded"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "CONNECT", "OPTIONS", "get"]

def b64u(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=")

def jwt(header, payload):
    return b64u(header) + b"." + b64u(payload) + b".c2lnbmF0dXJl"

def hdrs(items):
    out = bytes([len(items)])
    for name, value in items:
        out += bytes([NAMES.index(name)]) + struct.pack(">H", len(value)) + value
    return out

def tx(method, target, host, req, resp, status, req_body=b"", resp_body=b""):
    t, h = target.encode(), host.encode()
    return (bytes([METHODS.index(method), len(t)]) + t + bytes([len(h)]) + h + hdrs(req) + hdrs(resp)
            + struct.pack(">H", status) + struct.pack(">H", len(req_body)) + req_body + resp_body)

people = json.dumps({"users": [{"email": "ann@example.com", "phone": "+14155550123", "card": "4111111111111111",
                                "iban": "DE89370400440532013000", "ssn": "123-45-6789", "dob": "1980-01-31"}]}).encode()
J = [("content-type", b"application/json")]
cases = [
    tx("GET", "/v2/users/17", "api.shop.test", [("authorization", b"Bearer " + jwt({"alg": "HS256", "typ": "JWT"}, {"sub": "4242", "exp": 1, "iat": 0}))], J, 200, b"", people),
    tx("GET", "/v2/me", "api.shop.test", [("authorization", b"Bearer " + jwt({"alg": "none"}, {"sub": "1"}))], J, 200, b"", b"{}"),
    tx("GET", "/v1/users/1", "api.shop.test", [("authorization", b"Basic " + base64.b64encode(b"admin:admin123"))], J, 200, b"", people),
    tx("GET", "/v2/inventory/SKU-000108", "api.shop.test", [("x-api-key", b"sk_live_0123456789abcdefABCDEF")], [], 200),
    tx("GET", "/v2/reports/sales?api_key=abcdef0123456789abcdef&from=2024-01-01", "api.shop.test", [], J, 200, b"", people),
    tx("GET", "/v2/cart", "api.shop.test", [("cookie", b"session=0123456789abcdef0123456789; theme=dark")], [("set-cookie", b"sid=abc; HttpOnly")], 200),
    tx("POST", "/v1/login", "auth.shop.test", [("content-type", b"application/json")], J, 401, json.dumps({"email": "bob@shop.test", "password": "hunter2!"}).encode(), b'{"error":"bad credentials"}'),
    tx("POST", "/v1/login", "auth.shop.test", [("content-type", b"application/x-www-form-urlencoded")], [], 200, b"user=bob&password=hunter2%21&remember=1"),
    tx("GET", "/v2/users", "api.shop.test", [], J + [("content-encoding", b"gzip")], 200, b"", gzip.compress(people)),
    tx("GET", "/v2/users", "api.shop.test", [], J + [("content-encoding", b"deflate")], 200, b"", zlib.compress(people)),
    tx("GET", "/bomb", "api.shop.test", [], J + [("content-encoding", b"gzip")], 200, b"", gzip.compress(b"0" * 2_000_000)[:4000]),
    tx("GET", "/x.xml", "legacy.shop.test", [], [("content-type", b"application/xml")], 200, b"", b"<Customer><Email>a@b.co</Email><Card>4111111111111111</Card></Customer>"),
    tx("POST", "/v2/uploads", "api.shop.test", [("content-type", b"text/csv")], [], 201, b"email,phone\nann@example.com,+14155550123\n"),
    tx("POST", "/up", "api.shop.test", [("content-type", b"multipart/form-data; boundary=XX")], [], 200, b"--XX\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret123\r\n--XX--\r\n"),
    tx("GET", "/v2/search?q=%27", "api.shop.test", [], J, 500, b"", b'{"detail":"SQLSTATE[42601]: syntax error at or near","trace":["A.search(A.java:118)"]}'),
    tx("GET", "/api", "api.shop.test", [("origin", b"https://evil.example")], [("access-control-allow-origin", b"https://evil.example"), ("access-control-allow-credentials", b"true")], 200),
    tx("POST", "/p", "api.shop.test", [("transfer-encoding", b"chunked")], [], 200, b"0\r\n\r\n"),
]
paths = []
try:
    with open(os.path.join(root, "fixtures", "sample.truth.jsonl")) as f:
        for line in f:
            paths.append(json.loads(line)["path"])
except OSError:
    pass
seen, uniq = set(), []
for p in paths:
    if p not in seen:
        seen.add(p)
        uniq.append(p)
tmpl = [b"\n".join(bytes([i % 3]) + p.encode() for i, p in enumerate(uniq[k:k + 40])) for k in range(0, min(len(uniq), 400), 40)]
tmpl.append(b"\n".join(bytes([0]) + f"/v2/products/item-{i}-blue".encode() for i in range(40)))

def write(target, items):
    d = os.path.join(here, "seeds", target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(items):
        with open(os.path.join(d, f"seed-{i:03}"), "wb") as f:
            f.write(data)

write("auth", [bytes([i & 1]) + c for i, c in enumerate(cases)])
write("bodies", [bytes([i & 1]) + c for i, c in enumerate(cases)])
write("template", tmpl)
write("analyze", [b"".join(struct.pack(">H", len(c)) + c for c in cases[k:k + 4]) for k in range(0, len(cases), 2)])
print("seeds written:", {t: len(os.listdir(os.path.join(here, "seeds", t))) for t in ("auth", "bodies", "template", "analyze")})
