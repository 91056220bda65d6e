#!/usr/bin/env bash
# scripts/kafka.sh: a local single-node Apache Kafka (KRaft) for lookout's demo
# and tests, built from Maven Central jars and run with the machine's Java.
#
#   scripts/kafka.sh fetch                     resolve the pinned jars into .state/kafka/libs
#   scripts/kafka.sh start  [--port N]         start a broker on 127.0.0.1:N (controller on N+1),
#                                              wait until it answers a metadata request
#   scripts/kafka.sh stop   [--port N] [--kill] stop it (SIGTERM, then SIGKILL after a grace
#                                              period; --kill sends SIGKILL at once) and wait
#   scripts/kafka.sh status [--port N]         exit 0 when it answers metadata, 1 when not
#   scripts/kafka.sh wipe   [--port N]         stop it and delete its data directory
#   scripts/kafka.sh stop-all                  stop every broker this script started
#
# Defaults: port 9092. State: .state/kafka (libs/, data-<port>/, <port>.log, <port>.pid).
# Every command is idempotent: start on a running broker only checks it, stop on
# a stopped one does nothing. Readiness is a real metadata request made with
# kcat (Debian package kcat), never a fixed sleep.
#
# Environment:
#   KAFKA_START_TIMEOUT  seconds start waits for readiness (default 90)
#   KAFKA_STOP_TIMEOUT   seconds stop waits after SIGTERM before SIGKILL (default 30)
#   KAFKA_HEAP_OPTS      JVM heap flags (default -Xms128m -Xmx512m)
#   KAFKA_JVM_OPTS       extra JVM flags (default: C1 only, which starts faster on 2 cores)
#   JAVA_HOME / JAVA     Java 17+ to run the broker (default: java on PATH)
#   KAFKA_EXTRA_CONFIG   a properties file appended to the generated server.properties
#                        (later keys win: e.g. an extra SASL_SSL listener for tests)
#   KAFKA_FORMAT_ARGS    extra arguments for the first storage format of a data dir
#                        (e.g. --add-scram 'SCRAM-SHA-512=[name=u,password=p]')
#   LOOKOUT_STATE        state folder (default <repo>/.state)
set -euo pipefail

KAFKA_VERSION=4.4.0 # keep equal to kafka.version in scripts/kafka/pom.xml

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${LOOKOUT_STATE:-$ROOT/.state}/kafka
LIBS=$STATE/libs
TEMPLATE_DIR=$ROOT/scripts/kafka

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }
now_ms() { date +%s%3N; }

java_bin() {
	if [[ -n ${JAVA:-} ]]; then echo "$JAVA"
	elif [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then echo "$JAVA_HOME/bin/java"
	else command -v java || true
	fi
}

check_java() {
	local j ver major
	j=$(java_bin)
	[[ -n $j ]] || die "java not found: install a Java 17+ runtime (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
	[[ -x $j ]] || die "java at '$j' is not an executable file: fix JAVA or JAVA_HOME"
	ver=$("$j" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
	major=${ver%%.*}
	[[ $major == 1 ]] && major=$(echo "$ver" | cut -d. -f2)
	[[ $major =~ ^[0-9]+$ ]] || die "cannot read the version of $j ('$ver'): set JAVA_HOME to a Java 17+ runtime"
	((major >= 17)) || die "$j is Java $ver; Kafka $KAFKA_VERSION needs Java 17+: install openjdk-17-jre-headless or set JAVA_HOME"
	echo "$j"
}

check_kcat() {
	command -v kcat >/dev/null || die "kcat not found: it is the readiness probe; install it (apt-get install kcat)"
}

fetched() { [[ -f $LIBS/.version && $(cat "$LIBS/.version") == "$KAFKA_VERSION" ]] && compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; }

cmd_fetch() {
	if fetched; then
		say "Kafka $KAFKA_VERSION already in $LIBS"
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found: fetching Kafka's jars needs Maven (apt-get install maven)"
	mkdir -p "$STATE"
	local tmp=$STATE/libs.tmp.$$ t0
	rm -rf "$tmp"
	t0=$(now_ms)
	say "fetching Kafka $KAFKA_VERSION jars from Maven Central"
	if ! mvn -B -q -f "$TEMPLATE_DIR/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
		-Dmaven.repo.local="$STATE/m2" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$STATE/fetch.log" 2>&1; then
		rm -rf "$tmp"
		tail -20 "$STATE/fetch.log" >&2
		die "fetching Kafka $KAFKA_VERSION failed (Maven output above, full log $STATE/fetch.log): check access to Maven Central"
	fi
	[[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || { rm -rf "$tmp"; die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing from the result: see $STATE/fetch.log"; }
	echo "$KAFKA_VERSION" >"$tmp/.version"
	rm -rf "$LIBS"
	mv "$tmp" "$LIBS"
	say "fetched $(ls "$LIBS"/*.jar | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $(( $(now_ms) - t0 )) ms"
}

# port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_of PORT: prints the pid of our live broker for PORT, or nothing. A pid
# file whose process is gone or is not our broker (pid reuse) is removed.
pid_of() {
	local pf=$STATE/$1.pid pid
	[[ -f $pf ]] || return 0
	pid=$(cat "$pf" 2>/dev/null || true)
	if [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "data-$1/server.properties"; then
		echo "$pid"
	else
		rm -f "$pf"
	fi
}

ready() { kcat -b "127.0.0.1:$1" -L -m 2 >/dev/null 2>&1; }

render_config() {
	local port=$1 dir=$2
	sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$((port + 1))|g" -e "s|@DATA_DIR@|$dir|g" \
		"$TEMPLATE_DIR/server.properties.in" >"$dir/server.properties.tmp"
	if [[ -n ${KAFKA_EXTRA_CONFIG:-} ]]; then
		[[ -r $KAFKA_EXTRA_CONFIG ]] || die "KAFKA_EXTRA_CONFIG=$KAFKA_EXTRA_CONFIG is not a readable file"
		{ echo; echo "# from KAFKA_EXTRA_CONFIG=$KAFKA_EXTRA_CONFIG"; cat "$KAFKA_EXTRA_CONFIG"; } >>"$dir/server.properties.tmp"
	fi
	mv "$dir/server.properties.tmp" "$dir/server.properties"
}

cmd_start() {
	local port=$1 j pid dir log t0 timeout cid
	check_kcat
	j=$(check_java)
	pid=$(pid_of "$port")
	if [[ -n $pid ]]; then
		if ready "$port"; then
			say "already running on 127.0.0.1:$port (pid $pid)"
			return 0
		fi
		say "pid $pid is starting; waiting for readiness"
	else
		fetched || cmd_fetch
		port_busy "$port" && die "port $port is busy (another process listens on 127.0.0.1:$port): stop it or pass --port"
		port_busy $((port + 1)) && die "controller port $((port + 1)) is busy: stop that process or pass another --port"
		dir=$STATE/data-$port
		mkdir -p "$dir"
		render_config "$port" "$dir"
		log=$STATE/$port.log
		if [[ ! -f $dir/log/meta.properties ]]; then
			rm -rf "$dir/log"
			# A cluster id is 16 random bytes in URL-safe base64 without padding. One that starts with
			# "-" reads as an option to the storage tool (1 start in 64 failed so), so draw again then,
			# as Kafka's own Uuid.randomUuid does.
			cid=-
			while [[ $cid == -* ]]; do
				cid=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
			done
			local -a extra=()
			# shellcheck disable=SC2206 # word splitting of the extra arguments is intended
			[[ -n ${KAFKA_FORMAT_ARGS:-} ]] && eval "extra=(${KAFKA_FORMAT_ARGS})"
			if ! "$j" -Xmx256m -Dlog4j2.configurationFile="$TEMPLATE_DIR/log4j2.properties" -cp "$LIBS/*" \
				kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" --standalone "${extra[@]}" >"$log" 2>&1; then
				tail -20 "$log" >&2
				die "formatting $dir failed (output above): delete $dir and retry"
			fi
		fi
		t0=$(now_ms)
		# shellcheck disable=SC2086
		setsid nohup "$j" ${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m} ${KAFKA_JVM_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC} \
			-Djava.awt.headless=true -Dlog4j2.configurationFile="$TEMPLATE_DIR/log4j2.properties" \
			-Dkafka.logs.dir="$dir" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >>"$log" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$STATE/$port.pid"
	fi
	t0=${t0:-$(now_ms)}
	timeout=${KAFKA_START_TIMEOUT:-90}
	local deadline=$(( $(now_ms) + timeout * 1000 ))
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$STATE/$port.pid"
			tail -25 "$STATE/$port.log" >&2
			die "the broker on port $port exited during startup (log above, full log $STATE/$port.log)"
		fi
		if ready "$port"; then
			say "ready on 127.0.0.1:$port (pid $pid) in $(( $(now_ms) - t0 )) ms; log $STATE/$port.log"
			return 0
		fi
		if (( $(now_ms) > deadline )); then
			tail -25 "$STATE/$port.log" >&2
			die "the broker on port $port did not answer metadata within ${timeout}s (log above); it is still running as pid $pid: run 'scripts/kafka.sh stop --port $port'"
		fi
		sleep 0.2
	done
}

cmd_stop() {
	local port=$1 hard=$2 pid t0 deadline
	pid=$(pid_of "$port")
	if [[ -z $pid ]]; then
		say "not running on port $port"
		return 0
	fi
	t0=$(now_ms)
	if [[ $hard == 1 ]]; then
		kill -KILL "$pid" 2>/dev/null || true
	else
		kill -TERM "$pid" 2>/dev/null || true
	fi
	deadline=$(( t0 + ${KAFKA_STOP_TIMEOUT:-30} * 1000 ))
	while kill -0 "$pid" 2>/dev/null; do
		if (( $(now_ms) > deadline )); then
			say "pid $pid still alive after ${KAFKA_STOP_TIMEOUT:-30}s: sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			deadline=$(( $(now_ms) + 10000 ))
		fi
		sleep 0.1
	done
	rm -f "$STATE/$port.pid"
	say "stopped the broker on port $port (pid $pid) in $(( $(now_ms) - t0 )) ms"
}

cmd_status() {
	local port=$1 pid
	pid=$(pid_of "$port")
	if [[ -z $pid ]]; then
		echo "stopped (port $port)"
		return 1
	fi
	check_kcat
	if ready "$port"; then
		echo "ready on 127.0.0.1:$port (pid $pid)"
		return 0
	fi
	echo "running but not answering metadata on 127.0.0.1:$port (pid $pid); log $STATE/$port.log"
	return 1
}

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
	exit 2
}

main() {
	[[ $# -ge 1 ]] || usage
	local cmd=$1 port=9092 hard=0
	shift
	while [[ $# -gt 0 ]]; do
		case $1 in
		--port)
			[[ $# -ge 2 ]] || die "--port needs a value"
			port=$2
			shift 2
			;;
		--port=*) port=${1#--port=}; shift ;;
		--kill) hard=1; shift ;;
		-h | --help) usage ;;
		*) die "unknown argument '$1': see scripts/kafka.sh --help" ;;
		esac
	done
	[[ $port =~ ^[0-9]+$ ]] && ((port >= 1024 && port <= 65534)) || die "--port '$port' must be a number from 1024 to 65534 (the controller uses port+1)"
	case $cmd in
	fetch) cmd_fetch ;;
	start) cmd_start "$port" ;;
	stop) cmd_stop "$port" "$hard" ;;
	status) cmd_status "$port" ;;
	wipe)
		cmd_stop "$port" 0
		rm -rf "$STATE/data-$port" "$STATE/$port.log"
		say "deleted $STATE/data-$port"
		;;
	stop-all)
		local pf p
		for pf in "$STATE"/*.pid; do
			[[ -e $pf ]] || continue
			p=$(basename "$pf" .pid)
			[[ $p =~ ^[0-9]+$ ]] && cmd_stop "$p" "$hard"
		done
		;;
	-h | --help | help) usage ;;
	*) die "unknown command '$cmd': use fetch, start, stop, stop-all, status or wipe" ;;
	esac
}

main "$@"
