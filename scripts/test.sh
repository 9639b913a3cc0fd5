#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, then `go test -race`
# over every package (integration tests start their own redis-server and an
# embedded NATS; e2e drives headless Chromium), the rule fixtures, the Django
# integration package's tests, and a short fuzz pass over each parser.
set -euo pipefail
cd "$(dirname "$0")/.."
VIGIL_SETUP_TESTS=1 ./scripts/setup.sh

echo "== go vet" >&2
go vet ./...
echo "== deploy/django: vigil-django tests (pytest, real Redis, Django + DRF + simplejwt from PyPI)" >&2
./deploy/django/run-tests.sh -q
echo "== deploy/django: the same tests against Django 4.2 (the oldest supported), package installed with plain pip install" >&2
VIGIL_DJANGO_MIN=1 ./deploy/django/run-tests.sh -q
echo "== go test -race ./..." >&2
go test -race -count=1 -timeout 20m ./...
echo "== rule fixtures (vigil rules lint/test)" >&2
go run ./cmd/vigil rules lint
go run ./cmd/vigil rules test
echo "== fuzz (short pass over each parser of outside input)" >&2
# fuzz NAME PKG: a failing input (written under testdata/fuzz) fails the
# run. Go's fuzz coordinator sometimes ends a time-limited run with
# "context deadline exceeded" and no input when the machine is busy; that
# is retried once rather than reported as a bug.
fuzz() {
	local out
	if out=$(go test -run "^$" -fuzz "^$1\$" -fuzztime "${VIGIL_FUZZTIME:-15s}" "$2" 2>&1); then
		echo "$out" | tail -n 1
		return 0
	fi
	echo "$out"
	if ! grep -q "Failing input written" <<<"$out" && grep -q "context deadline exceeded" <<<"$out"; then
		echo "fuzz: $1 stopped on the coordinator's deadline without a failing input; retrying once" >&2
		go test -run "^$" -fuzz "^$1\$" -fuzztime "${VIGIL_FUZZTIME:-15s}" "$2"
		return
	fi
	return 1
}
for target in "FuzzParse ./ingest/accesslog" "FuzzUnmarshal ./event" "FuzzClassify ./detect" "FuzzDecodeCheckpoint ./ingest/tail" \
	"FuzzParse ./ingest/csp" "FuzzParse ./ingest/appevent" "FuzzParse ./ingest/syslog" "FuzzFrameReader ./ingest/syslog" "FuzzSplit ./index" \
	"FuzzChunking ./ingest/tail" "FuzzParseTarget ./respond" "FuzzEachMember ./ingest/csp" "FuzzSplitArray ./ingest/csp" \
	"FuzzValid ./ingest/csp" "FuzzSplitURL ./ingest/csp"; do
	set -- $target
	fuzz "$1" "$2"
done
