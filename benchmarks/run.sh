#!/usr/bin/env bash
# Runs the echo-server comparison (net, netcore, gnet, ... in a server
# process; Go's net as the client in the benchmark) in interleaved rounds
# and prints a markdown table of the medians of every metric, with ratios
# against net, then benchstat's view (significance).
#
#   benchmarks/run.sh                         # 5 rounds of everything
#   ROUNDS=10 BENCH='Echo/conns=1000' benchmarks/run.sh
#   TLS=1 benchmarks/run.sh                   # only the echo over TLS, against net-tls
#   IMPLS=net,loop,uring benchmarks/run.sh    # only these implementations (-impls)
#   IMPLS=net,loop,loop-uring SYSROUNDS=5 benchmarks/run.sh   # the Loop on both backends
#
# Every round runs every benchmark for every implementation once, so a slow
# stretch of the machine hits them alike. 10,000 connections run in a second
# pass with a longer benchtime (LONG, LONGTIME): in a closed loop one round
# of them takes a good part of a second, and a short run would measure
# little more than the first burst. A round takes about a minute. The raw
# results stay in benchmarks/echo-<date>.txt.
#
# The tables give ratios against net and against gnet, and for the
# implementations over TLS (net-tls, netcore-tls, loop-tls; they run Echo
# at 64 and 1,000 connections and PingPong) against net-tls. TLS=1 runs
# only their Echo (BENCH's default then) and prints only that table.
#
# System calls per op come from one more round with -syscalls (perf stat
# counting the server's calls; skipped without perf, or with SYSCALLS=0;
# SYSROUNDS=K makes it K rounds, and the table their medians): counting
# costs the server CPU per call, so those rounds' other figures are left
# out. It runs LONG too.
#
# With uring or loop-uring (the Loop on io_uring) among the results, one
# more table compares everything with the epoll Loop (impl=loop).
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-5}
TLS=${TLS:-0}
if [ "$TLS" = 1 ]; then
	BENCH=${BENCH:-'Echo/conns=(64|1000)$/-tls$'}
fi
BENCH=${BENCH:-.}
BENCHTIME=${BENCHTIME:-1s}
IMPLS=${IMPLS:-}
# With BENCH given and LONG not, only BENCH runs.
LONG=${LONG-$([ "$BENCH" = . ] && echo 'Echo/conns=10000' || true)}
LONGTIME=${LONGTIME:-5s}
METRICS=${METRICS:-rt/s,conns/s,p50-ns,p99-ns,srv-cpu-ns/op,srv-ctxsw/op,srv-allocs/op,srv-peak-rss-B,srv-idle-rss-B/conn,srv-idle-heap-B/conn,cli-cpu-ns/op}
SYSCALLS=${SYSCALLS:-$(command -v perf >/dev/null && echo 1 || echo 0)}
SYSROUNDS=${SYSROUNDS:-1}
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=echo-$stamp.txt
sysout=syscalls-$stamp.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/echo.test" .
(cd .. && go build -o "$tmp/benchtable" ./scripts/benchtable)
for i in $(seq "$ROUNDS"); do
	echo "round $i/$ROUNDS" >&2
	skip=()
	if [ -n "$LONG" ]; then
		skip=(-test.skip "$LONG")
	fi
	"$tmp/echo.test" -test.run '^$' -test.bench "$BENCH" "${skip[@]}" -test.benchtime "$BENCHTIME" -test.benchmem -impls "$IMPLS" >> "$out"
	if [ -n "$LONG" ]; then
		"$tmp/echo.test" -test.run '^$' -test.bench "$LONG" -test.benchtime "$LONGTIME" -test.benchmem -impls "$IMPLS" >> "$out"
	fi
done
if [ "$SYSCALLS" = 1 ]; then
	for i in $(seq "$SYSROUNDS"); do
		echo "system calls: round $i/$SYSROUNDS with -syscalls" >&2
		"$tmp/echo.test" -test.run '^$' -test.bench "$BENCH" "${skip[@]}" -test.benchtime "$BENCHTIME" -syscalls -impls "$IMPLS" >> "$sysout"
		if [ -n "$LONG" ]; then
			"$tmp/echo.test" -test.run '^$' -test.bench "$LONG" -test.benchtime "$LONGTIME" -syscalls -impls "$IMPLS" >> "$sysout"
		fi
	done
fi
echo "raw results: benchmarks/$out" >&2
# tlsonly keeps the results of the implementations over TLS (impl=NAME-tls).
tlsonly() { grep -E '^Benchmark[^ ]*/impl=[^/ ]*-tls(-[0-9]+)?[[:space:]]' "$@" || true; }
# hasuring says whether FILE has results of uring or loop-uring, and of loop
# (the base of their table).
hasuring() { grep -qE '/impl=(loop-)?uring(-[0-9]+)?[[:space:]]' "$1" && grep -qE '/impl=loop(-[0-9]+)?[[:space:]]' "$1"; }
base=net
if [ "$TLS" = 1 ]; then
	base=net-tls
	echo "Medians of $ROUNDS rounds; in parentheses, how many times better than impl=net-tls (above 1 is better)."
	echo
	"$tmp/benchtable" -base net-tls -metrics "$METRICS" "$out"
	echo
else
	echo "Medians of $ROUNDS rounds; in parentheses, how many times better than impl=net (above 1 is better)."
	echo
	"$tmp/benchtable" -base net -metrics "$METRICS" "$out"
	echo
	if grep -q '/impl=gnet-' "$out"; then
		echo "The same medians against impl=gnet."
		echo
		"$tmp/benchtable" -base gnet -metrics "$METRICS" "$out"
		echo
	fi
	if hasuring "$out"; then
		echo "The same medians against impl=loop (the epoll Loop)."
		echo
		"$tmp/benchtable" -base loop -metrics "$METRICS" "$out"
		echo
	fi
	if [ -n "$(tlsonly "$out")" ]; then
		echo "The implementations over TLS, against impl=net-tls."
		echo
		tlsonly "$out" | "$tmp/benchtable" -base net-tls -metrics "$METRICS"
		echo
	fi
fi
if [ -s "$sysout" ]; then
	echo "The server's system calls per op (medians of $SYSROUNDS round(s) with -syscalls, counted by perf stat), against impl=$base."
	echo
	"$tmp/benchtable" -base "$base" -metrics srv-syscalls/op "$sysout"
	echo
	if hasuring "$sysout"; then
		echo "The same against impl=loop."
		echo
		"$tmp/benchtable" -base loop -metrics srv-syscalls/op "$sysout"
		echo
	fi
fi
go run "$BENCHSTAT" -col /impl "$out"
