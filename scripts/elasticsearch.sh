#!/usr/bin/env bash
# A real single-node Elasticsearch 8.x for tests and local development.
#
#   scripts/elasticsearch.sh path       fetch and unpack (once), print the Elasticsearch home
#   scripts/elasticsearch.sh java-home  print the JDK the node runs on
#   scripts/elasticsearch.sh start      start a node on 127.0.0.1 (or say it already runs), print its URL
#   scripts/elasticsearch.sh url        print the URL of the running node
#   scripts/elasticsearch.sh stop       stop the node `start` started
#
# The node is Elastic's integ-test distribution from Maven Central
# (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip,
# fetched with `mvn dependency:copy`): the server with x-pack core and
# security only, no bundled JDK, no data streams, ILM or ingest pipelines.
# Security is off (xpack.security.enabled=false): plain HTTP, no users.
#
# Environment:
#   VIGIL_ES_VERSION    version to fetch (default 8.19.21; needs a JDK >= 17)
#   VIGIL_CACHE         cache directory (default ~/.cache/vigil; /var/cache/vigil
#                       for root, see below)
#   VIGIL_ES_DIR        node state (config, data, logs, pid, url); default
#                       ${TMPDIR:-/tmp}/vigil-es-<uid>
#   VIGIL_ES_PORT       HTTP port (default: any free port)
#   VIGIL_ES_HEAP       heap size (default 512m)
#   VIGIL_ES_JAVA_OPTS  extra JVM options (default -XX:TieredStopAtLevel=1:
#                       C1 only, which starts the node in ~10 s instead of
#                       ~45 s on two cores; drop it for benchmarks)
#   VIGIL_ES_USER       user the node runs as when this script runs as root
#                       (Elasticsearch refuses root; default nobody)
#   ES_JAVA_HOME        JDK to run on (default: the `java` on PATH)
#
# Root: Elasticsearch will not run as root, so the node runs as
# $VIGIL_ES_USER, which must be able to read the unpacked distribution; as
# /root is private, root's default cache is /var/cache/vigil.
set -euo pipefail

version="${VIGIL_ES_VERSION:-8.19.21}"
if [ "$(id -u)" = 0 ]; then
	cache="${VIGIL_CACHE:-/var/cache/vigil}"
else
	cache="${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}"
fi
esdir="$cache/elasticsearch"
home="$esdir/elasticsearch-$version"
state="${VIGIL_ES_DIR:-${TMPDIR:-/tmp}/vigil-es-$(id -u)}"

die() {
	echo "elasticsearch.sh: $*" >&2
	exit 1
}

# fetch downloads and unpacks the distribution unless it is there already.
fetch() {
	[ -x "$home/bin/elasticsearch" ] && return 0
	local zip="$esdir/elasticsearch-$version.zip"
	mkdir -p "$esdir"
	if [ ! -s "$zip" ]; then
		command -v mvn >/dev/null ||
			die "mvn not found: install Maven (apt-get install -y maven) or set VIGIL_TEST_ES_URL to a running Elasticsearch"
		echo "elasticsearch.sh: fetching org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip from Maven Central" >&2
		local log
		log="$(mktemp)"
		if ! mvn -B -q dependency:copy \
			-Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip" \
			-DoutputDirectory="$esdir" -Dmdep.overWriteReleases=true >"$log" 2>&1; then
			cat "$log" >&2
			rm -f "$log"
			die "mvn dependency:copy failed (is Maven Central reachable? does version $version exist?)"
		fi
		rm -f "$log"
		[ -s "$zip" ] || die "mvn did not produce $zip"
	fi
	command -v unzip >/dev/null || die "unzip not found: apt-get install -y unzip"
	local tmp
	tmp="$(mktemp -d "$esdir/unpack.XXXXXX")"
	unzip -q "$zip" -d "$tmp"
	[ -d "$tmp/elasticsearch-$version" ] || die "$zip does not hold elasticsearch-$version/"
	chmod -R a+rX "$tmp/elasticsearch-$version"
	# Another process may have unpacked it meanwhile; either copy is good.
	mv -T "$tmp/elasticsearch-$version" "$home" 2>/dev/null || true
	rm -rf "$tmp"
	[ -x "$home/bin/elasticsearch" ] || die "unpacking $zip failed"
}

# javahome prints the JDK to run on and checks it is at least 17.
javahome() {
	local jh="${ES_JAVA_HOME:-}"
	if [ -z "$jh" ]; then
		local java
		java="$(command -v java)" ||
			die "java not found: install a JDK >= 17 (apt-get install -y openjdk-17-jre-headless) or set ES_JAVA_HOME"
		java="$(readlink -f "$java")"
		jh="${java%/bin/java}"
	fi
	[ -x "$jh/bin/java" ] || die "$jh/bin/java not found: set ES_JAVA_HOME to a JDK >= 17"
	local major
	major="$("$jh/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
	[ -n "$major" ] && [ "$major" -ge 17 ] ||
		die "Elasticsearch $version needs Java >= 17, $jh has ${major:-an unknown version}: set ES_JAVA_HOME"
	echo "$jh"
}

running() {
	[ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

health() {
	curl -fsS --max-time 5 "$1/_cluster/health?wait_for_status=yellow&timeout=2s" >/dev/null 2>&1
}

start() {
	command -v curl >/dev/null || die "curl not found: apt-get install -y curl"
	if running && [ -f "$state/url" ] && health "$(cat "$state/url")"; then
		cat "$state/url"
		return 0
	fi
	running && stop
	fetch
	local jh
	jh="$(javahome)"
	rm -rf "$state"
	mkdir -p "$state/data" "$state/logs" "$state/tmp"
	cp -r "$home/config" "$state/config"
	local run=()
	if [ "$(id -u)" = 0 ]; then
		local user="${VIGIL_ES_USER:-nobody}" group
		group="$(id -gn "$user")" || die "no user $user: set VIGIL_ES_USER to an unprivileged user"
		chown -R "$user:$group" "$state"
		chmod 755 "$state"
		setpriv --reuid="$user" --regid="$group" --clear-groups test -r "$home/lib" ||
			die "$user cannot read $home: set VIGIL_CACHE to a directory $user can read"
		run=(setpriv --reuid="$user" --regid="$group" --clear-groups)
	fi
	(
		cd "$state"
		export ES_JAVA_HOME="$jh" ES_PATH_CONF="$state/config" ES_TMPDIR="$state/tmp"
		export ES_JAVA_OPTS="-Xms${VIGIL_ES_HEAP:-512m} -Xmx${VIGIL_ES_HEAP:-512m} ${VIGIL_ES_JAVA_OPTS--XX:TieredStopAtLevel=1}"
		exec setsid "${run[@]}" "$home/bin/elasticsearch" \
			-E cluster.name=vigil-test \
			-E node.name=vigil-test \
			-E discovery.type=single-node \
			-E network.host=127.0.0.1 \
			-E http.port="${VIGIL_ES_PORT:-0}" \
			-E transport.port=0 \
			-E node.portsfile=true \
			-E path.data="$state/data" \
			-E path.logs="$state/logs" \
			-E xpack.security.enabled=false \
			-E cluster.routing.allocation.disk.threshold_enabled=false \
			-E action.destructive_requires_name=false \
			>"$state/console.log" 2>&1 </dev/null
	) &
	echo $! >"$state/pid"
	local deadline=$((SECONDS + ${VIGIL_ES_START_TIMEOUT:-180}))
	while :; do
		if ! running; then
			tail -n 30 "$state/console.log" >&2
			die "Elasticsearch exited while starting; logs in $state/logs"
		fi
		if [ -s "$state/logs/http.ports" ]; then
			local url="http://$(head -1 "$state/logs/http.ports")"
			if health "$url"; then
				echo "$url" >"$state/url"
				echo "$url"
				return 0
			fi
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			tail -n 30 "$state/console.log" >&2
			stop
			die "Elasticsearch did not become healthy in ${VIGIL_ES_START_TIMEOUT:-180}s; logs in $state/logs"
		fi
		sleep 0.25
	done
}

stop() {
	running || { rm -f "$state/pid" "$state/url"; return 0; }
	local pid
	pid="$(cat "$state/pid")"
	# setsid made the launcher a process group leader: signal the group (the
	# launcher JVM and the server JVM under it).
	kill -TERM -- "-$pid" 2>/dev/null || true
	for _ in $(seq 1 120); do
		kill -0 -- "-$pid" 2>/dev/null || break
		sleep 0.25
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	rm -f "$state/pid" "$state/url"
}

case "${1:-start}" in
path)
	fetch
	echo "$home"
	;;
java-home) javahome ;;
start) start ;;
url)
	running && [ -f "$state/url" ] || die "no node running (state $state)"
	cat "$state/url"
	;;
stop) stop ;;
*) die "usage: $0 [start|stop|url|path|java-home]" ;;
esac
