#!/usr/bin/env bash
# Replay throughput and peak memory of `vigil replay` on a generated
# 1,000,000-line nginx log with the default rule pack, against fail2ban-regex
# with a 404 filter in its fast form (bench/fail2ban-404.conf), in one run.
#
#   bench/compare.sh [LINES]     (default 1000000; needs fail2ban and GNU time:
#                                 VIGIL_SETUP_BENCH=1 scripts/setup.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
out=bench/out
mkdir -p "$out" bin
command -v fail2ban-regex >/dev/null && [ -x /usr/bin/time ] || VIGIL_SETUP_BENCH=1 ./scripts/setup.sh
go build -o bin/vigil ./cmd/vigil
go build -o bin/vigil-loggen ./cmd/vigil-loggen
log="$out/access-$lines.log"
[ -s "$log" ] || bin/vigil-loggen -lines "$lines" -seed 1 -o "$log" -truth "$out/truth-$lines.jsonl"
echo "log: $log ($(wc -l <"$log") lines, $(du -h "$log" | cut -f1))"
cat "$log" >/dev/null # warm the page cache for both

measure() { # name, command...
	local name=$1; shift
	/usr/bin/time -f "%e %M" -o "$out/time" "$@" >"$out/$name.out" 2>"$out/$name.err"
	read -r secs kib <"$out/time"
	awk -v n="$name" -v l="$lines" -v s="$secs" -v k="$kib" \
		'BEGIN { printf "%-16s %8.2f s  %12.0f lines/s  peak RSS %6.1f MiB\n", n, s, l/s, k/1024 }'
}
measure vigil-replay bin/vigil replay --quiet --json "$log"
python3 - "$out/vigil-replay.out" "$out/truth-$lines.jsonl" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
truth = {(t["rule"], t["key"]) for t in map(json.loads, open(sys.argv[2]))}
modelled = {r for r, _ in truth}
mine = {(a["rule"], a["key"]) for a in got if a["rule"] in modelled}
print(f"  detections: {len(got)} ({len(mine)} of the {len(modelled)} rules the generator models; "
      f"ground truth {len(truth)}: {len(mine & truth)} found, {len(truth - mine)} missed, {len(mine - truth)} extra)")
PY
measure fail2ban-regex fail2ban-regex "$log" bench/fail2ban-404.conf
grep -E "^Lines:|Failregex:" "$out/fail2ban-regex.out" | sed 's/^/  fail2ban: /'
