#!/usr/bin/env bash
# Runs netcore's loopback benchmarks beside Go's net and prints the
# comparison (benchstat, one column per implementation, ratios against net).
#
#   scripts/bench.sh                  # every benchmark, 10 interleaved rounds
#   ROUNDS=20 BENCH='PingPong' scripts/bench.sh
#
# Rounds are interleaved (every benchmark once, then again), so a slow
# stretch of the machine hits every implementation alike; benchstat then
# reports medians. The raw results stay in bench-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-10}
BENCH=${BENCH:-.}
BENCHTIME=${BENCHTIME:-1s}
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
out=bench-$(date -u +%Y%m%dT%H%M%SZ).txt

go test -c -o /tmp/netcore-bench.test .
for i in $(seq "$ROUNDS"); do
	echo "round $i/$ROUNDS" >&2
	/tmp/netcore-bench.test -test.run '^$' -test.bench "$BENCH" -test.benchtime "$BENCHTIME" -test.benchmem >> "$out"
done
echo "raw results: $out" >&2
go run "$BENCHSTAT" -col /impl "$out"
