#!/usr/bin/env bash
# Installs what Vigil and its tests need on a Debian 12 machine, idempotently:
# Go modules, redis-server (tests and `vigil run`), prometheus/promtool and
# fail2ban (benchmark comparison). Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
if [ "${VIGIL_SETUP_BENCH:-0}" = 1 ]; then
	command -v fail2ban-regex >/dev/null || need+=(fail2ban)
fi
if [ ${#need[@]} -gt 0 ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO="sudo"
	echo "setup: installing ${need[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# A Debian redis-server package starts a system service; Vigil's tests start
# their own servers and do not need it, `vigil run` uses it on :6379.
go mod download
