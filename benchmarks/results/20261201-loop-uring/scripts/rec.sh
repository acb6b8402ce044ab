#!/bin/bash
conns=$1; impl=$2
${ECHO:-/tmp/ubench-mine/echo.test} -test.run '^$' -test.bench "Echo/conns=$conns\$" -test.benchtime 3s -impls "$impl" > /tmp/prof/bench.out 2>&1 &
tp=$!
for i in $(seq 200); do sp=$(pgrep -P $tp | head -1); [ -n "$sp" ] && break; sleep 0.05; done
sleep ${DELAY:-8}
perf record -p $sp -e io_uring:io_uring_submit_req -e io_uring:io_uring_complete -e io_uring:io_uring_cqe_overflow -o /tmp/prof/tp.data -- sleep 0.5 
wait $tp
grep Bench /tmp/prof/bench.out | awk '{for(i=1;i<=NF;i++) if ($(i)=="rt/s"||$(i)=="srv-cpu-ns/op") printf "%s %s ", $(i-1), $(i); print $1, $2}'
perf script -i /tmp/prof/tp.data 2>/dev/null > /tmp/prof/tp.txt
wc -l < /tmp/prof/tp.txt
