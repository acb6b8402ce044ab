#!/usr/bin/env bash
# Runs netcore's loopback benchmarks beside Go's net, across processes (the
# server side of every workload in a child process, the client in the
# benchmark; the same implementation on both ends), and prints the
# comparison: benchstat (one column per implementation, with significance)
# and a markdown table of medians with ratios against net.
#
#   scripts/bench.sh                  # every benchmark, 10 interleaved rounds
#   ROUNDS=20 BENCH='PingPong' scripts/bench.sh
#
# Rounds are interleaved (every benchmark once, then again), so a slow
# stretch of the machine hits every implementation alike; benchstat and the
# table report medians. The raw results stay in bench-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-10}
BENCH=${BENCH:-.}
BENCHTIME=${BENCHTIME:-1s}
METRICS=${METRICS:-ns/op,srv-cpu-ns/op,cli-cpu-ns/op,p50-ns,p99-ns,syscalls/op,srv-allocs/op}
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
out=bench-$(date -u +%Y%m%dT%H%M%SZ).txt
bin=$(mktemp -d)/netcore-bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT

go test -c -o "$bin" .
go build -o "$(dirname "$bin")/benchtable" ./scripts/benchtable
for i in $(seq "$ROUNDS"); do
	echo "round $i/$ROUNDS" >&2
	"$bin" -test.run '^$' -test.bench "$BENCH" -test.benchtime "$BENCHTIME" -test.benchmem >> "$out"
done
echo "raw results: $out" >&2
go run "$BENCHSTAT" -col /impl "$out"
echo
echo "Medians; in parentheses, how many times better than impl=net (above 1 is better)."
"$(dirname "$bin")/benchtable" -base net -metrics "$METRICS" "$out"
