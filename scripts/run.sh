#!/usr/bin/env bash
# Sets up what is missing (Go modules, redis-server), makes sure a Redis
# answers on 127.0.0.1:6379 (starting one if none does), builds vigil and
# runs `vigil run` with the arguments given (default: follow nginx's access
# logs). With VIGIL_DEMO=1 it also starts a log generator that appends a
# realistic nginx log with scanners and brute forcers, so bans appear at once.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
	mkdir -p vigil-data/redis
	echo "run: starting redis-server on 127.0.0.1:6379 (data in vigil-data/redis)" >&2
	redis-server --bind 127.0.0.1 --port 6379 --dir "$PWD/vigil-data/redis" --daemonize yes \
		--logfile "$PWD/vigil-data/redis/redis.log" >/dev/null
	for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

mkdir -p bin vigil-data
go build -o bin/vigil ./cmd/vigil
# The admin API (bans, lockdown, revocations; the `vigil ban|lockdown|...`
# commands) needs a token: make one on first run.
if [ ! -s vigil-data/admin-token ]; then
	(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > vigil-data/admin-token)
fi
echo "run: admin token in vigil-data/admin-token (export VIGIL_ADMIN_TOKEN_FILE=$PWD/vigil-data/admin-token for the CLI)" >&2
args=(--admin-token-file vigil-data/admin-token "$@")
if [ "${VIGIL_DEMO:-0}" = 1 ]; then
	go build -o bin/vigil-loggen ./cmd/vigil-loggen
	mkdir -p vigil-data/demo
	echo "run: demo generator appending to vigil-data/demo/access.log" >&2
	# Two-minute rounds of 60,000 lines with a few scanners, brute forcers
	# and attackers each, a new seed (new attacker IPs) every round.
	(for round in $(seq 1 1000); do
		bin/vigil-loggen -follow -lines 60000 -rate 500 -seed "$round$$" -o vigil-data/demo/access.log \
			-truth "vigil-data/demo/truth-$round.jsonl" 2>/dev/null || exit 0
	done) &
	# Stop the generator with vigil, however the script ends.
	trap 'trap - EXIT INT TERM; kill 0 2>/dev/null' EXIT INT TERM
	args+=(--access-log "vigil-data/demo/*.log")
elif [ $# -eq 0 ] && [ -z "${VIGIL_ACCESS_LOG:-}" ] && [ -z "${VIGIL_CONFIG:-}" ]; then
	args+=(--access-log '/var/log/nginx/*access*.log')
fi
bin/vigil run "${args[@]}" &
wait $!
