#!/usr/bin/env bash
# Regenerates cmd/vigil/default.pgo, the CPU profile `go build` and
# `go install` use for profile-guided optimisation of the vigil binary
# (https://go.dev/doc/pgo): inlining and devirtualisation where the
# profile says the time goes. It merges two workloads, so neither path is
# tuned at the other's expense:
#
#   - `vigil run` answering POST /csp-report under wrk (bench/cspload/run.sh
#     with PROFILE=..., 20 s of profile): the public listener, CSP parsing,
#     group commit to JetStream, detection of CSP events;
#   - the streaming benchmark (go test -bench Streaming ./app): access logs
#     tailed, parsed, published, detected.
#
#   bench/pgo.sh            # writes cmd/vigil/default.pgo; commit it
#
# Refresh it when the hot paths change; a stale profile only makes the
# optimisation less useful, never the program wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/pgo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
RUNS=1 DURATION=5s PROFILE="$tmp/csp.pprof" bench/cspload/run.sh >&2
go test -run '^$' -bench Streaming -benchtime 3x -cpuprofile "$tmp/streaming.pprof" -o "$tmp/app.test" ./app >&2
go tool pprof -proto "$tmp/csp.pprof" "$tmp/streaming.pprof" >cmd/vigil/default.pgo
ls -l cmd/vigil/default.pgo
