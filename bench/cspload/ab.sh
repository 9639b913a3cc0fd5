#!/usr/bin/env bash
# Interleaved A/B of Vigil builds on POST /csp-report, for judging a change
# on a machine whose speed drifts (this VM's varies by ±30 % over minutes,
# so two single runs minutes apart say little).
#
#   bench/cspload/ab.sh [VIGIL_BINARY ...]
#
# Every binary given (default: one built from the working tree) runs at the
# same time on its own ports, data directory and Redis database, idle but
# for its own turn; the bare handler (bench/cspload/bare) runs beside them.
# Each round gives every target a short wrk run, one after the other, and
# reads its CPU time (utime+stime from /proc) from the start of the run until
# it is idle again, so work a run leaves behind (a detector catching up)
# is counted for its target and does not slow the next one. Per target, it
# prints each round and then the medians of: req/s against the bare run of
# the same round, and CPU per request, alone and against the bare handler's
# of the same round. The CPU figure is the steady one: compare builds by it.
# A binary can be a wrapper script that execs vigil with other flags or
# environment, to compare settings.
#
# A run with non-2xx answers or socket errors stops the comparison: a build
# that refuses requests would look cheap.
#
# Settings (environment): ROUNDS=5 SECS=6 (seconds per wrk run) THREADS=2
# CONNS=64 KEEP=1 (keep the temporary directory with the logs).
set -euo pipefail
bins=()
for b in "$@"; do # absolute, before the cd
	case $b in /*) ;; *) b="$PWD/$b" ;; esac
	[ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
	bins+=("$b")
done
cd "$(dirname "$0")/../.."
here=bench/cspload
ROUNDS=${ROUNDS:-5} SECS=${SECS:-6} THREADS=${THREADS:-2} CONNS=${CONNS:-64}
[ "$ROUNDS" -ge 1 ] 2>/dev/null || { echo "ROUNDS must be a whole number >= 1" >&2; exit 2; }
while read -r v; do unset "$v"; done < <(compgen -e | grep '^VIGIL_' || true)
for c in wrk redis-server redis-cli curl ss go python3; do
	command -v "$c" >/dev/null || { echo "missing: $c (bench/cspload/run.sh installs wrk)" >&2; exit 1; }
done

. "$here/lib.sh" cspab

[ ${#bins[@]} -le 16 ] || { echo "at most 16 binaries (one Redis database each)" >&2; exit 2; }
if [ ${#bins[@]} = 0 ]; then
	echo "building vigil from the working tree" >&2
	go build -o "$tmp/vigil" ./cmd/vigil
	bins=("$tmp/vigil")
fi
go build -o "$tmp/bare" ./$here/bare

start_redis

names=() vpids=() urls=()
for i in "${!bins[@]}"; do
	port=$(free_port) admin=$(free_port)
	"${bins[i]}" run --data-dir "$tmp/data$i" --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" \
		--redis "redis://127.0.0.1:$redis_port/$((i % 16))" --rate-limit 100000000 --log-level warn >"$tmp/vigil$i.log" 2>&1 &
	pids+=("$!") vpids+=("$!") urls+=("http://127.0.0.1:$port/csp-report") names+=("$(basename "${bins[i]}")#$i")
	ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$admin/readyz" || true)" = 200 ]; }
	for _ in $(seq 300); do ready && break; sleep 0.1; done
	ready || { echo "${bins[i]} not ready after 30 s:" >&2; cat "$tmp/vigil$i.log" >&2; exit 1; }
done
bport=$(free_port)
"$tmp/bare" -listen "127.0.0.1:$bport" >"$tmp/bare.log" 2>&1 &
pids+=("$!") vpids+=("$!") urls+=("http://127.0.0.1:$bport/csp-report") names+=(bare)
for _ in $(seq 50); do ss -Htln "sport = :$bport" | grep -q . && break; sleep 0.1; done

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
settle() { # pid: wait until the process is idle (work left from a run, such as a detector catching up, is done)
	local a b
	for _ in $(seq 100); do
		a=$(cpu "$1"); sleep 0.3; b=$(cpu "$1")
		[ $((b - a)) -le 1 ] && return
	done
	echo "warning: pid $1 still busy after 30 s" >&2
}
measure() { # pid url: "req/s cpu_us_per_request", the CPU counted until the process is idle again
	local t0 t1
	t0=$(cpu "$1")
	if ! wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" -s "$here/report.lua" "$2" >"$tmp/wrk.txt" 2>&1; then
		echo "wrk against $2 failed:" >&2; cat "$tmp/wrk.txt" >&2; return 1
	fi
	if grep -Eq 'Non-2xx|Socket errors' "$tmp/wrk.txt"; then
		echo "$2 refused requests or dropped connections; not comparable:" >&2; cat "$tmp/wrk.txt" >&2; return 1
	fi
	settle "$1"
	t1=$(cpu "$1")
	awk -v c=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '/requests in/ { n = $1 } /Requests\/sec/ { r = $2 }
		END { if (n == 0) exit 1; printf "%.0f %.1f\n", r, c / hz * 1e6 / n }' "$tmp/wrk.txt"
}
echo "wrk -t$THREADS -c$CONNS -d${SECS}s, $ROUNDS rounds; targets: ${names[*]}"
for i in "${!vpids[@]}"; do measure "${vpids[i]}" "${urls[i]}" >/dev/null || exit 1; done # warm-up
for r in $(seq "$ROUNDS"); do
	line=""
	for i in "${!vpids[@]}"; do
		m=$(measure "${vpids[i]}" "${urls[i]}") || exit 1
		line+="$m "
	done
	echo "$line" >>"$tmp/rounds"
	echo "round $r: $line" | awk '{ printf "%s", $1" "$2; for (i = 3; i <= NF; i += 2) printf "  %s req/s %s µs", $i, $(i+1); print "" }'
done
python3 - "$tmp/rounds" "${names[@]}" <<'EOF'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
names = sys.argv[2:]
b = len(names) - 1
print(f"\n{'target':22s} {'req/s vs bare':>22s} {'CPU µs/request':>15s} {'CPU vs bare':>12s}   (medians over rounds)")
for k, name in enumerate(names[:-1]):
    rr = [r[2*k] / r[2*b] for r in rows]
    cpu = [r[2*k+1] for r in rows]
    rel = [r[2*k+1] / r[2*b+1] for r in rows]
    print(f"{name:22s} {st.median(rr):6.3f} ({min(rr):.2f}-{max(rr):.2f}) {st.median(cpu):15.1f} {st.median(rel):11.2f}x")
print(f"{'bare':22s} {st.median([r[2*b] for r in rows]):9.0f} req/s {st.median([r[2*b+1] for r in rows]):18.1f}")
EOF
