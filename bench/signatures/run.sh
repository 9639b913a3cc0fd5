#!/usr/bin/env bash
# How many of a public fuzzing corpus's payloads the signature rules catch:
# wfuzz's injection and traversal word lists (Debian's wfuzz package, which
# this script installs if missing), each payload sent in a query the way a
# scanner places and encodes it (SQL payloads appended to a value, "id=1"
# + payload; the others as the value) and again raw in the path, through
# `vigil replay --json` with the default rules.
#
#   bench/signatures/run.sh
#
# Each payload gets a client address of its own, so every payload a rule
# catches is one detection; a payload counts as caught when the rule its
# list is about fires for it. Comment lines of the lists are left out.
# Single tokens in the SQL lists (', --, select, or) are not caught on
# purpose: a one-hit rule that bans on them would ban ordinary searches.
set -euo pipefail
cd "$(dirname "$0")/../.."
lists=/usr/share/wfuzz/wordlist
if [ ! -d "$lists" ]; then
	echo "installing wfuzz (for its word lists)" >&2
	apt-get install -y wfuzz >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wfuzz >/dev/null; }
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/vigil" ./cmd/vigil

printf '%-44s %-16s %s\n' "word list" rule "caught"
while read -r list rule param; do
	python3 - "$lists/$list" "$param" >"$tmp/log" <<'PY'
import sys, urllib.parse
n = 0
for p in open(sys.argv[1], encoding="latin-1").read().splitlines():
    if not p.strip() or p.startswith("#"):
        continue
    n += 1
    ip = "100.64.%d.%d" % (n // 250, n % 250 + 1)  # one client per payload
    t = "23/Nov/2026:10:%02d:%02d +0000" % (n // 60 % 60, n % 60)
    name, _, value = sys.argv[2].partition("=")
    for target in ("/search?" + name + "=" + value + urllib.parse.quote_plus(p), "/static/" + urllib.parse.quote(p, safe="/%\\:;?=&.'\"()<>*@!$,")):
        target = target.replace('"', "%22").replace(" ", "%20")
        print('%s - - [%s] "GET %s HTTP/1.1" 404 153 "-" "wfuzz/3.1"' % (ip, t, target))
PY
	total=$(($(wc -l <"$tmp/log") / 2))
	caught=$("$tmp/vigil" replay --json "$tmp/log" 2>/dev/null | grep -c "\"rule\":\"$rule\"" || true)
	printf '%-44s %-16s %4d / %-4d (%d%%)\n' "$list" "$rule" "$caught" "$total" $((100 * caught / total))
done <<'LISTS'
Injections/Traversal.txt path-traversal file=
vulns/dirTraversal.txt path-traversal file=
vulns/dirTraversal-nix.txt path-traversal file=
vulns/dirTraversal-win.txt path-traversal file=
Injections/SQL.txt sql-injection id=1
vulns/sql_inj.txt sql-injection id=1
Injections/XSS.txt script-injection q=
LISTS
