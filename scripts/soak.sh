#!/usr/bin/env bash
# The soak test: netcore.Server (default mode), netcore.Server in blocking
# mode, netcore.Loop and the Loop serving TLS (Loop.ServeTLS), one after
# another, each serving a length-prefixed echo protocol with its limits
# set, against a mixed population of clients in another process
# (pipelining clients that verify every byte, slow readers, clients that
# never read, resets mid-request, half-closes, garbage, connect-and-vanish;
# against TLS also stalled handshakes, bad ClientHellos and resumed
# sessions). It prints a table and exits non-zero if a well-behaved client
# lost anything, a limit did not act, descriptors or goroutines leaked,
# memory passed the bound the limits allow, or a TLS server's count of
# failed handshakes is not the clients' bad ones.
#
#   scripts/soak.sh                 # 60 s per server
#   SOAK_TIME=10s scripts/soak.sh   # what CI runs
#   scripts/soak.sh -servers loop-tls,server-tls   # the Loop's TLS against the Server's
#   scripts/soak.sh -servers loop -clients pipeline=32,never=8   # more: go run ./scripts/soak -h
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/soak" ./scripts/soak
"$dir/soak" -time "${SOAK_TIME:-60s}" "$@"
