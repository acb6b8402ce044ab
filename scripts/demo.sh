#!/usr/bin/env bash
# The demo in one command: builds cmd/server and cmd/client, starts the
# server on a free loopback port, runs the client against it (arguments
# are passed to the client, e.g. -msg ping), and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/server" ./cmd/server
go build -o "$dir/client" ./cmd/client

"$dir/server" -addr 127.0.0.1:0 > "$dir/server.out" &
server=$!
# Wait (at most 10 s) for the server to say where it listens.
for _ in $(seq 100); do
	grep -q '^listening on ' "$dir/server.out" && break
	kill -0 "$server" 2>/dev/null || { echo "demo: the server did not start" >&2; exit 1; }
	sleep 0.1
done
addr=$(awk '/^listening on /{print $3; exit}' "$dir/server.out")
[ -n "$addr" ] || { echo "demo: the server did not report its address" >&2; exit 1; }

echo "--- client"
"$dir/client" -addr "$addr" "$@"
kill -INT "$server"
wait "$server" || true
echo "--- server"
cat "$dir/server.out"
