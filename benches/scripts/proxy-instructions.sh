#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: what an A/B of a proxy change should compare on a noisy
# machine, where CPU time per request wanders by ±15 % between runs of the same binary and instruction counts do not.
#
#   benches/scripts/proxy-instructions.sh [BENCH_BINARY] [SECONDS] [CONNECTIONS]
#
# Runs `idgate-bench probe-proxy` under callgrind (about 50 × slower: a few hundred requests a second), zeroes the
# counters once the measured `wrk` run starts and dumps them when it ends, then prints the instructions of the
# proxy's serving threads and of the hello-world upstream's thread, per request, and their ratio. The ratio needs no
# request count (the upstream serves each request once), so it is the figure to compare; the per-request figures
# divide by the count `wrk` reported and are approximate by the few requests in flight at each end.
#
# Needs valgrind (`apt-get install valgrind`) and a release build of the harness (debug info on, as benches/
# Cargo.toml builds it); nginx is started by the probe afterwards and stopped here.
set -euo pipefail

bin=${1:-${CARGO_TARGET_DIR:-target}/release/idgate-bench}
seconds=${2:-6}
connections=${3:-32}
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
[ -x "$bin" ] || { echo "no harness binary at $bin: cargo build --release in benches/" >&2; exit 1; }
bin=$(realpath "$bin")

out=$(mktemp -d)
trap 'kill "$probe" 2>/dev/null || true; pkill -f "nginx: master process.*idgate-bench" 2>/dev/null || true; rm -rf "$out"' EXIT
cd "$(dirname "$0")/.."
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/cg.%p" \
    "$bin" probe-proxy "$seconds" "$connections" >"$out/probe.txt" 2>&1 &
probe=$!

# The probe runs wrk twice against the proxy: a warm-up, then the measured run. Count from the second one.
seen=0 last=
while [ "$seen" -lt 2 ]; do
    kill -0 "$probe" 2>/dev/null || { cat "$out/probe.txt" >&2; exit 1; }
    pid=$(pgrep -n -x wrk || true)
    if [ -n "$pid" ] && [ "$pid" != "$last" ]; then seen=$((seen + 1)); last=$pid; fi
    sleep 0.05
done
callgrind_control -z "$probe" >/dev/null 2>&1
while kill -0 "$last" 2>/dev/null; do sleep 0.05; done
callgrind_control -d "$probe" >/dev/null 2>&1
sleep 1
line=$(grep -m1 '^idgate proxy' "$out/probe.txt")
rps=$(sed -E 's/.*connections: ([0-9]+) req\/s.*/\1/' <<<"$line")

python3 - "$out" "$rps" "$seconds" <<'PY'
import glob, re, sys
out, rps, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
proxy = upstream = 0
for path in glob.glob(f"{out}/cg.*.1-*"):  # part 1: the dump made at the end of the measured run
    text = open(path, errors="replace").read()
    total = int(re.search(r"^summary: (\d+)", text, re.M).group(1))
    if "idgate_serve::connection" in text:  # the serving threads
        proxy += total
    elif "axum::serve" in text:  # the upstream's runtime
        upstream += total
requests = rps * seconds
print(f"proxy threads: {proxy / requests:,.0f} instructions per request")
print(f"upstream (hello world): {upstream / requests:,.0f} instructions per request")
print(f"proxy / upstream: {proxy / upstream:.3f}")
PY
