# Shared by run.sh and ab.sh (sourced, not run): a temporary directory,
# clean-up of the processes they start, free loopback ports and a private
# Redis.
#
#   . bench/cspload/lib.sh PREFIX   # makes $tmp (/tmp/PREFIX.XXXXXX), sets the traps
#   pids+=("$!")                    # each process started: stopped on exit, last first
#   port=$(free_port)
#   start_redis                     # sets $redis_port

tmp=$(mktemp -d "/tmp/$1.XXXXXX")
pids=()
cleanup() { # stop what was started, newest first (the servers, then Redis); KEEP=1 keeps $tmp
	local rc=$? i p
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		p=${pids[i]}
		kill -TERM "$p" 2>/dev/null || continue
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ "${KEEP:-}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

used=" "
free_port() { # a loopback TCP port nothing listens on and not handed out yet
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		case $used in *" $p "*) continue ;; esac
		if [ -z "$(ss -Htln "sport = :$p")" ]; then used+="$p "; echo "$p"; return; fi
	done
}

start_redis() { # a private, memory-only Redis on a free port: $redis_port
	redis_port=$(free_port)
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$tmp" --daemonize no >"$tmp/redis.log" 2>&1 &
	pids+=("$!")
	for _ in $(seq 50); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && return; sleep 0.1; done
	echo "redis-server did not start:" >&2
	cat "$tmp/redis.log" >&2
	exit 1
}
