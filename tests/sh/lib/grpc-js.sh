# The @grpc/grpc-js peer for tests/sh/test-daemon.sh.  Source after
# grpc-peer.sh.  npm comes with node (/usr/lib/node_modules/npm); the two
# packages are installed once into a cache outside the repository,
# ${XDG_CACHE_HOME:-~/.cache}/casfs-test-npm (npm's own registry
# configuration).  No node or no install: SKIP with the reason.
#   grpc_js_run STORE   a daemon on STORE, the client under both packages
GRPC_JS_CACHE="${CASFS_TEST_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/casfs-test-npm}"
NPM_CLI=/usr/lib/node_modules/npm/bin/npm-cli.js

grpc_js_install() {
	[ -d "$GRPC_JS_CACHE/node_modules/@grpc/grpc-js" ] &&
		[ -d "$GRPC_JS_CACHE/node_modules/@grpc/proto-loader" ] && return 0
	mkdir -p "$GRPC_JS_CACHE" || return 1
	timeout 300 node "$NPM_CLI" install --prefix "$GRPC_JS_CACHE" --no-audit --no-fund \
		--no-save --loglevel=error @grpc/grpc-js@1.14 @grpc/proto-loader@0.8 >"$TMP/npm.log" 2>&1
}

grpc_js_run() {
	local store=$1
	if ! command -v node >/dev/null || [ ! -f "$NPM_CLI" ]; then
		skip "$T/grpc-js" "node or its bundled npm is not installed"
		return 0
	fi
	if ! grpc_js_install; then
		skip "$T/grpc-js" "npm could not install @grpc/grpc-js: $(tail -2 "$TMP/npm.log" | tr '\n' ' ')"
		return 0
	fi
	if ! daemon_start js "$store"; then
		fail "$T/grpc-js-start" "$(cat "$TMP/daemon-js.log")"
		return 0
	fi
	daemon_wait_health "$DAEMON_UNIX_js" || fail "$T/grpc-js-ready" "never SERVING"
	local pkg target
	for pkg in tvix snix; do
		target=$DAEMON_TCP_js
		[ $pkg = tvix ] && target=$DAEMON_UNIX_js
		# grpc-js spells unix sockets unix:///PATH
		case $target in unix:*) target="unix://${target#unix:}" ;; esac
		NODE_PATH="$GRPC_JS_CACHE/node_modules" timeout 120 node "$TOP/tests/peers/grpc_js_client.js" \
			"$TOP/tests/proto" "$target" $pkg "$TMP/expect.json" || fail "$T/grpc-js-$pkg" "exited $?"
	done
	kill -TERM "$DAEMON_PID_js"
	daemon_gone "$DAEMON_PID_js" 20 || fail "$T/grpc-js-stop" "still running"
}
