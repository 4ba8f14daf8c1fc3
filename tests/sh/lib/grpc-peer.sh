# gRPC peers for the daemon tests.  Source after common.sh.  Provides
#   grpc_peer_stubs            python stubs from tests/proto/ into $GRPC_STUBS
#                              (made here, at test time); non-zero if
#                              grpc_tools is missing
#   grpc_client ARGS...        tests/peers/grpc_client.py with the stubs, at
#                              most $GRPC_CLIENT_TIMEOUT (300) seconds
#   daemon_start NAME STORE [--foreground] ARGS...
#                              casfs daemon --listen unix:$TMP/NAME.sock
#                              --listen 127.0.0.1:0 (--background unless
#                              --foreground); sets DAEMON_PID_NAME,
#                              DAEMON_UNIX_NAME (unix:PATH), DAEMON_TCP_NAME
#                              (127.0.0.1:PORT); its stderr goes to
#                              $TMP/daemon-NAME.log; returns non-zero when it
#                              printed no address lines within 20 s
#   daemon_wait_health TARGET  until Health/Check says SERVING (at most 20 s)
#   daemon_gone PID [SECONDS]  until PID has exited (default at most 15 s)
# Every daemon started is sent SIGTERM then SIGKILL on exit
# (daemon_cleanup, called from the test's cleanup_hook).
GRPC_PY=/usr/bin/python3
GRPC_STUBS="$TMP/stubs"
DAEMON_PIDS=()

grpc_peer_stubs() {
	mkdir -p "$GRPC_STUBS"
	(cd "$TOP/tests/proto" &&
		"$GRPC_PY" -m grpc_tools.protoc -I. --python_out="$GRPC_STUBS" --grpc_python_out="$GRPC_STUBS" \
			$(find . -name '*.proto' | sed 's|^\./||' | sort)) >"$TMP/protoc.log" 2>&1
}

grpc_client() {
	timeout "${GRPC_CLIENT_TIMEOUT:-300}" "$GRPC_PY" "$TOP/tests/peers/grpc_client.py" --stubs "$GRPC_STUBS" "$@"
}

daemon_start() {
	local name=$1 store=$2 fg=0
	shift 2
	if [ "${1:-}" = --foreground ]; then
		fg=1
		shift
	fi
	local out="$TMP/daemon-$name.out" pidf="$TMP/daemon-$name.pid"
	: >"$out"
	rm -f "$pidf"
	if [ $fg = 1 ]; then
		"$CASFS" --store "$store" daemon --listen "unix:$TMP/$name.sock" --listen 127.0.0.1:0 \
			--pid-file "$pidf" "$@" >"$out" 2>>"$TMP/daemon-$name.log" &
		DAEMON_PIDS+=("$!")
		local i
		for i in $(seq 400); do
			[ "$(grep -c '^listening on' "$out")" -ge 2 ] && break
			kill -0 "$!" 2>/dev/null || break
			sleep 0.05
		done
	else
		timeout 20 "$CASFS" --store "$store" daemon --listen "unix:$TMP/$name.sock" \
			--listen 127.0.0.1:0 --pid-file "$pidf" --background "$@" \
			>"$out" 2>>"$TMP/daemon-$name.log" || return 1
	fi
	[ -s "$pidf" ] || return 1
	local pid
	pid=$(cat "$pidf")
	DAEMON_PIDS+=("$pid")
	printf -v "DAEMON_PID_$name" %s "$pid"
	printf -v "DAEMON_UNIX_$name" %s "$(sed -n 's/^listening on \(unix:.*\)/\1/p' "$out")"
	printf -v "DAEMON_TCP_$name" %s "$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$out")"
	[ "$(grep -c '^listening on' "$out")" -ge 2 ]
}

daemon_wait_health() {
	local i
	for i in $(seq 40); do
		timeout 10 "$GRPC_PY" "$TOP/tests/peers/grpc_client.py" --stubs "$GRPC_STUBS" \
			--target "$1" --package tvix health && return 0
		sleep 0.5
	done
	return 1
}

daemon_gone() {
	local i n=$(((${2:-15}) * 20))
	for i in $(seq "$n"); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

daemon_cleanup() {
	local p
	for p in "${DAEMON_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${DAEMON_PIDS[@]}"; do daemon_gone "$p" 5 || kill -KILL "$p" 2>/dev/null; done
}
