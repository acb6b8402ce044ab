#!/bin/bash
# count.sh CONNS IMPL: io_uring tracepoint counts over the server's life
conns=$1; impl=$2
${ECHO:-/tmp/ubench-mine/echo.test} -test.run '^$' -test.bench "Echo/conns=$conns\$" -test.benchtime 3s -impls "$impl" > /tmp/prof/bench.out 2>&1 &
tp=$!
for i in $(seq 200); do sp=$(pgrep -P $tp | head -1); [ -n "$sp" ] && break; sleep 0.05; done
perf stat -x, -p $sp -e io_uring:io_uring_complete -e io_uring:io_uring_complete --filter 'res == -105' \
  -e io_uring:io_uring_cqe_overflow -e io_uring:io_uring_submit_req -e io_uring:io_uring_poll_arm \
  -e syscalls:sys_enter_io_uring_enter -e io_uring:io_uring_task_work_run -e io_uring:io_uring_local_work_run -o /tmp/prof/perf.out &
pp=$!
wait $tp
kill -INT $pp 2>/dev/null; wait $pp
grep Bench /tmp/prof/bench.out | awk '{for(i=1;i<=NF;i++) if ($(i)=="rt/s"||$(i)=="srv-cpu-ns/op") printf "%s %s ", $(i-1), $(i); print $1, $2}'
grep -v '^#' /tmp/prof/perf.out | cut -d, -f1,3,7
