#!/usr/bin/env bash
# Load benchmark of Vigil's POST /csp-report under wrk on loopback, against a
# bare net/http handler that only reads and JSON-decodes the same body
# (bench/cspload/bare), in one run.
#
#   bench/cspload/run.sh
#
# Settings (environment): THREADS=2 CONNS=64 DURATION=20s RUNS=2 (runs per
# target, alternating vigil, bare, vigil, bare, ...; the summary takes each
# target's best run by req/s and shows its latencies, then each Vigil run
# against the bare run right after it and their median, and each server's
# median CPU time per request, from /proc), WARMUP=3s (one
# untimed wrk run per target first), KEEP=1 (keep the temporary directory
# with the wrk outputs and Vigil's log), PROFILE=FILE (after the timed runs,
# one more wrk run while a 20 s CPU profile of Vigil is written to FILE,
# for `go tool pprof`; Vigil then runs with --pprof).
#
# It installs wrk with apt-get if missing, builds both programs into a
# temporary directory, starts a private Redis, `vigil run` (temporary
# --data-dir, rate limit 100000000/s, log level warn, no access logs) and the
# bare handler on free loopback ports, and stops all of them on exit. After
# the runs it reads Vigil's /metrics to show that the requests were accepted
# (204) and their events published to JetStream, not refused.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/cspload
THREADS=${THREADS:-2} CONNS=${CONNS:-64} DURATION=${DURATION:-20s} RUNS=${RUNS:-2} WARMUP=${WARMUP:-3s}

# Nothing from the caller's environment configures this Vigil.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^VIGIL_' || true)

if ! command -v wrk >/dev/null; then
	echo "installing wrk" >&2
	apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
for c in wrk redis-server redis-cli curl ss go; do
	command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }
done

. "$here/lib.sh" cspload

echo "building" >&2
go build -o "$tmp/vigil" ./cmd/vigil
go build -o "$tmp/bare" ./$here/bare

start_redis

vport=$(free_port) aport=$(free_port) bport=$(free_port)
"$tmp/vigil" run --data-dir "$tmp/data" --listen "127.0.0.1:$vport" --admin "127.0.0.1:$aport" \
	--redis "redis://127.0.0.1:$redis_port/0" --rate-limit 100000000 --log-level warn \
	${PROFILE:+--pprof} >"$tmp/vigil.log" 2>&1 &
vpid=$!
pids+=("$vpid")
"$tmp/bare" -listen "127.0.0.1:$bport" >"$tmp/bare.log" 2>&1 &
bpid=$!
pids+=("$bpid")

vurl="http://127.0.0.1:$vport/csp-report" burl="http://127.0.0.1:$bport/csp-report"
admin="http://127.0.0.1:$aport"
probe='{"csp-report":{"document-uri":"https://shop.example/checkout","referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"default-src '"'self'"'; script-src '"'self'"'; report-uri https://vigil.example/csp-report","disposition":"enforce","blocked-uri":"https://evil.example/x.js","status-code":200,"script-sample":""}}'
answers() { # url: the status of one report POST
	curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/csp-report' --data-binary "$probe" "$1" || true
}
for _ in $(seq 300); do
	[ "$(answers "$vurl")" = 204 ] && [ "$(answers "$burl")" = 204 ] &&
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$admin/readyz" || true)" = 200 ] && break
	for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a server exited:" >&2; cat "$tmp"/*.log >&2; exit 1; }; done
	sleep 0.1
done
[ "$(answers "$vurl")" = 204 ] && [ "$(answers "$burl")" = 204 ] || { echo "servers not answering 204" >&2; cat "$tmp"/*.log >&2; exit 1; }

metric() { # file, metric name, label filter (regexp): the sum of matching series
	awk -v n="$2" -v f="$3" '$1 ~ "^"n"({|$)" && $1 ~ f { s += $NF } END { printf "%.0f", s }' "$1"
}
rss() { awk '/^VmRSS/ { printf "%.1f MiB", $2/1024 }' "/proc/$vpid/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # pid: CPU time used (user + system), in clock ticks
hz=$(getconf CLK_TCK)

wrkrun() { # name, url, duration, out file
	wrk -t"$THREADS" -c"$CONNS" -d"$3" --latency -s "$here/report.lua" "$2" >"$4" 2>&1
}
echo "load before: $(uptime)"
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency -s $here/report.lua URL; $RUNS runs per target, alternating; warm-up $WARMUP each"
wrkrun vigil "$vurl" "$WARMUP" "$tmp/warm-vigil.txt"
wrkrun bare "$burl" "$WARMUP" "$tmp/warm-bare.txt"
curl -s "$admin/metrics" >"$tmp/metrics-before.txt"
rss_before=$(rss)
for i in $(seq "$RUNS"); do
	for t in vigil bare; do
		url=$vurl pid=$vpid; [ $t = bare ] && url=$burl pid=$bpid
		t0=$(ticks "$pid")
		wrkrun $t "$url" "$DURATION" "$tmp/$t-$i.txt"
		# The server's CPU time per request wrk counted: steadier than
		# req/s on a machine whose speed drifts.
		echo $(($(ticks "$pid") - t0)) >"$tmp/$t-$i.cpu"
		awk -v t="$t" -v i="$i" -v m="$(rss)" -v c="$(cat "$tmp/$t-$i.cpu")" -v hz="$hz" '
			/Requests\/sec/ { r = $2 } /requests in/ { n = $1 }
			END { printf "  run %d %-5s %10.0f req/s %6.1f us CPU/request   (Vigil RSS now %s)\n", i, t, r, c / hz * 1e6 / n, m }' "$tmp/$t-$i.txt"
	done
done
echo "load after:  $(uptime)"
if [ -n "${PROFILE:-}" ]; then
	wrkrun vigil "$vurl" 24s "$tmp/profile-run.txt" &
	sleep 2
	curl -sf -o "$PROFILE" "$admin/debug/pprof/profile?seconds=20" || { echo "profiling failed" >&2; exit 1; }
	wait $!
	echo "CPU profile of Vigil under load: $PROFILE"
fi
sleep 1 # let the last group commit land
curl -s "$admin/metrics" >"$tmp/metrics-after.txt"

# parse one wrk output: rps p50 p99 requests non2xx socket-errors
parse() {
	awk '
	function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
	/Requests\/sec/ { rps = $2 }
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/requests in/ { n = $1 }
	/Non-2xx or 3xx responses/ { bad = $NF }
	/Socket errors/ { gsub(/,/, ""); se = $4 + $6 + $8 + $10 }
	END { printf "%s %s %s %s %d %d\n", rps, p50, p99, n, bad, se }' "$1"
}
best() { # target: the output file of its best run by req/s
	for f in "$tmp/$1"-[0-9]*.txt; do echo "$(awk '/Requests\/sec/ { print $2 }' "$f") $f"; done | sort -gr | head -1 | cut -d' ' -f2
}
total() { # target: requests, non-2xx and socket errors over all its timed runs
	for f in "$tmp/$1"-[0-9]*.txt; do parse "$f"; done | awk '{ n += $4; b += $5; s += $6 } END { print n, b, s }'
}
read -r vr v50 v99 _ _ _ < <(parse "$(best vigil)")
read -r br b50 b99 _ _ _ < <(parse "$(best bare)")
read -r vn vbad vse < <(total vigil)
read -r bn bbad bse < <(total bare)
echo
echo "best of $RUNS runs per target (by req/s); non-2xx and socket errors summed over all timed runs"
printf '%-6s %12s %10s %10s %12s %9s %9s\n' target req/s p50_ms p99_ms requests non-2xx sock_err
printf '%-6s %12.0f %10.2f %10.2f %12d %9d %9d\n' vigil "$vr" "$v50" "$v99" "$vn" "$vbad" "$vse"
printf '%-6s %12.0f %10.2f %10.2f %12d %9d %9d\n' bare "$br" "$b50" "$b99" "$bn" "$bbad" "$bse"
awk -v v="$vr" -v b="$br" 'BEGIN { r = v/b; printf "ratio vigil/bare req/s: %.2f (target >= 0.70: %s)\n", r, (r >= 0.7 ? "met" : "NOT met") }'
# Each Vigil run against the bare run right after it: the machine's speed
# drifts between runs, and neighbours are the fairest comparison.
pairs=$(for i in $(seq "$RUNS"); do
	awk '/Requests\/sec/ { print $2 }' "$tmp/vigil-$i.txt" "$tmp/bare-$i.txt" | paste -sd' ' | awk '{ printf "%.2f\n", $1 / $2 }'
done)
echo "run by run: $(echo "$pairs" | paste -sd' ' | sed 's/ /, /g') (median $(echo "$pairs" | sort -g |
	awk '{ r[NR] = $1 } END { printf "%.2f", (NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2) }'))"

cpu() { # target: its median CPU time per request over the timed runs, in µs
	for i in $(seq "$RUNS"); do
		awk -v c="$(cat "$tmp/$1-$i.cpu")" -v hz="$hz" '/requests in/ { printf "%.1f\n", c / hz * 1e6 / $1 }' "$tmp/$1-$i.txt"
	done | sort -g | awk '{ r[NR] = $1 } END { printf "%.1f", (NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2) }'
}
vc=$(cpu vigil) bc=$(cpu bare)
echo "server CPU per request (median): vigil $vc us, bare $bc us ($(awk -v v="$vc" -v b="$bc" 'BEGIN { printf "%.2f", v / b }')x; wrk shares the cores, so req/s follows the sum)"

echo
echo "Vigil /metrics over the timed runs (after - before):"
d() { echo $(($(metric "$tmp/metrics-after.txt" "$1" "$2") - $(metric "$tmp/metrics-before.txt" "$1" "$2"))); }
acc=$(d vigil_http_requests_total 'endpoint="csp-report"')
ok=$(d vigil_http_requests_total 'code="204".*endpoint="csp-report"')
ev=$(d vigil_ingest_events_total 'source="csp"')
pub=$(d vigil_ingest_events_published_total 'source="csp"')
limited=$(d vigil_http_rate_limited_total '')
codes=$(for c in $(grep -o '^vigil_http_requests_total{code="[0-9]*",endpoint="csp-report"}' "$tmp/metrics-after.txt" | grep -o 'code="[0-9]*"' | tr -d 'code="'); do
	n=$(d vigil_http_requests_total "code=\"$c\".*endpoint=\"csp-report\""); [ "$n" = 0 ] || printf '%s:%s ' "$c" "$n"; done)
printf '  %-50s %s\n' "vigil_http_requests_total{endpoint=csp-report}" "$acc" \
	"  by code" "${codes:-none}" \
	"vigil_http_rate_limited_total" "$limited" \
	"vigil_ingest_lines_skipped_total{source=csp}" "$(d vigil_ingest_lines_skipped_total 'source="csp"')" \
	"vigil_ingest_events_total{source=csp}" "$ev" \
	"vigil_ingest_events_published_total{source=csp}" "$pub" \
	"vigil_ingest_publish_retries_total" "$(d vigil_ingest_publish_retries_total '')" \
	"wrk: requests to vigil (timed runs), non-2xx" "$vn, $vbad"
echo "  (wrk stops counting the requests in flight when a run ends, up to $CONNS per run; Vigil"
echo "   counts those whose client left before their events were stored as 499, and stores them)"
if [ "$limited" = 0 ] && [ "$vbad" = 0 ] && [ "$pub" -ge "$ok" ] && [ "$ok" -ge "$vn" ]; then
	echo "  OK: no 429s, wrk saw only 2xx, and every 204 Vigil counted has its event published"
else
	echo "  WARNING: requests refused or events not published (see above)"
fi
echo "  Vigil RSS: $rss_before before the timed runs, $(rss) after"
warns=$(grep -Ei 'level=(warn|error)' "$tmp/vigil.log" | grep -Evc 'msg=detection|admin API disabled|/events refuses' || true)
echo "  Vigil log warnings/errors (other than detections and the start-up notes): $warns"
[ "$warns" = 0 ] || grep -Ei 'level=(warn|error)' "$tmp/vigil.log" | grep -Ev 'msg=detection|admin API disabled|/events refuses' |
	sed -E 's/^time=[^ ]+ //' | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /'
