#!/bin/bash
# pp.sh BENCH IMPL: perf record -g of the server over 3 s of the benchmark
bench=$1; impl=$2
/tmp/ubench-mine/echo.test -test.run '^$' -test.bench "$bench" -test.benchtime ${BT:-6s} -impls "$impl" > /tmp/prof/bench.out 2>&1 &
tp=$!
for i in $(seq 200); do sp=$(pgrep -P $tp | head -1); [ -n "$sp" ] && break; sleep 0.05; done
sleep ${DELAY:-3}
perf record -q -F 1999 -g -p $sp -o /tmp/prof/pp.$impl.data -- sleep 3 2>/dev/null
wait $tp
grep Bench /tmp/prof/bench.out | awk '{for(i=1;i<=NF;i++) if ($(i)=="rt/s"||$(i)=="srv-cpu-ns/op") printf "%s %s ", $(i-1), $(i); print $1, $2}'
perf script -F comm,tid,ip,sym,dso -i /tmp/prof/pp.$impl.data 2>/dev/null | python3 /tmp/split/classify.py
