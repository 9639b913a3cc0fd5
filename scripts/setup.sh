#!/usr/bin/env bash
# Installs what Vigil and its tests need on a Debian 12 machine, idempotently:
# Go modules and redis-server (always); Chromium, nginx, gobuster, sqlmap,
# Prometheus, a JDK and Maven (VIGIL_SETUP_TESTS=1, for the browser, nginx,
# scanner, dashboard and Elasticsearch tests); fail2ban (VIGIL_SETUP_BENCH=1, benchmark
# comparison). Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
if [ "${VIGIL_SETUP_TESTS:-0}" = 1 ]; then
	# The browser end-to-end test drives Debian's Chromium; the Django
	# integration package's tests need a venv.
	command -v chromium >/dev/null || need+=(chromium)
	# Debian's nginx sends its access log to Vigil over syslog in an
	# end-to-end test (a private config on loopback; the package's own
	# service is not used).
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
	# Real scanners pointed at that nginx: gobuster (content discovery)
	# and sqlmap (SQL injection).
	command -v gobuster >/dev/null || need+=(gobuster)
	command -v sqlmap >/dev/null || need+=(sqlmap)
	# systemd-analyze checks the units in deploy/systemd.
	command -v systemd-analyze >/dev/null || need+=(systemd)
	# promtool and a real Prometheus for the dashboard and alert-rule tests.
	command -v promtool >/dev/null || need+=(prometheus)
	# Elasticsearch for the indexer tests runs on a JDK >= 17, fetched with Maven.
	command -v java >/dev/null || need+=(openjdk-17-jre-headless)
	command -v mvn >/dev/null || need+=(maven)
	command -v unzip >/dev/null || need+=(unzip)
	python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
fi
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
