"""Times google-auth's JWT verification (google.auth.jwt.decode with the certificates passed in: no network per
call) on the tokens idgate-bench wrote. Prints one JSON object: per algorithm, ops/s and the median µs/op.

Usage: python google_auth_py.py INPUT.json
"""

import json
import statistics
import sys
import time

import cryptography
import google.auth
from google.auth import jwt


def contender(spec):
    tokens, certs, audience = spec["tokens"], spec["certs"], spec["audience"]
    issuers = set(spec["issuers"])

    def op(i):
        claims = jwt.decode(tokens[i % len(tokens)], certs=certs, audience=audience)
        if claims["iss"] not in issuers:
            raise ValueError("wrong issuer")

    return op


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    rounds, slice_s, chunk = data["rounds"], data["slice_ms"] / 1000.0, data["chunk"]
    ops = {kind: contender(data[kind]) for kind in ("rs256", "es256")}
    for kind, op in ops.items():
        for i in range(len(data[kind]["tokens"])):
            op(i)  # sanity: every token verifies
    results = {kind: {"ops": 0, "elapsed": 0.0, "chunks": []} for kind in ops}
    index = 0
    for _ in range(rounds):
        for kind, op in ops.items():
            r = results[kind]
            start = time.perf_counter()
            while time.perf_counter() - start < slice_s:
                t = time.perf_counter_ns()
                for _ in range(chunk):
                    op(index)
                    index += 1
                dt = time.perf_counter_ns() - t
                r["ops"] += chunk
                r["elapsed"] += dt / 1e9
                r["chunks"].append(dt / chunk / 1000.0)
    out = {
        kind: {
            "ops_per_s": r["ops"] / r["elapsed"],
            "median_us": statistics.median(r["chunks"]),
            "ops": r["ops"],
        }
        for kind, r in results.items()
    }
    out["versions"] = {
        "python": sys.version.split()[0],
        "google-auth": google.auth.__version__,
        "cryptography": cryptography.__version__,
    }
    print(json.dumps(out))


main()
