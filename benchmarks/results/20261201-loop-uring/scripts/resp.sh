#!/bin/bash
# resp.sh LOAD TEST N: perf record and syscall split for redis, loop, uring
set -u
load=$1; test=$2; n=$3
cd /work/wt-ubench && go build -o /tmp/split/resp ./examples/resp || exit 1
cd /tmp/split
port=$((20000 + RANDOM % 10000))
redis-server --bind 127.0.0.1 --port $port --save '' --appendonly no --daemonize no > redis.log 2>&1 &
rp=$!
./resp -addr 127.0.0.1:0 -mode loop -backend epoll > loop.log 2>&1 & lp=$!
./resp -addr 127.0.0.1:0 -mode loop -backend io_uring > uring.log 2>&1 & up=$!
sleep 1
lport=$(awk '/^listening on /{n=split($3,a,":"); print a[n]; exit}' loop.log)
uport=$(awk '/^listening on /{n=split($3,a,":"); print a[n]; exit}' uring.log)
evs=raw_syscalls:sys_enter
for s in read write recvfrom sendto epoll_wait epoll_pwait epoll_ctl io_uring_enter futex nanosleep clock_nanosleep sched_yield tgkill getpid rt_sigreturn mmap munmap madvise accept4 close; do evs="$evs,syscalls:sys_enter_$s"; done
for t in redis:$rp:$port loop:$lp:$lport uring:$up:$uport; do
	IFS=: read name pid p <<<"$t"
	redis-benchmark -h 127.0.0.1 -p $p $load -n $n -t $test -q > bench.$name.txt 2>&1 &
	bp=$!
	sleep 2
	perf record -q -F 1999 -g -p $pid -o perf.$name.data -- sleep 4 2>/dev/null
	perf stat -x, -e $evs -p $pid -o stat.$name.txt -- sleep 3
	c0=$(awk '{print $14+$15}' /proc/$pid/stat); wait $bp
	echo "== $name: $(tr '\r' '\n' < bench.$name.txt | tail -2 | head -1)"
	perf script -F comm,tid,ip,sym,dso -i perf.$name.data 2>/dev/null | python3 classify.py
	# per-request syscall mix: counts over 3 s, divided by requests in 3 s at the measured rate
	awk -F, '!/^#/ && NF>3 {printf "%s=%s ", $3, $1} END{print ""}' stat.$name.txt | sed 's/syscalls:sys_enter_//g'
done
kill $rp $lp $up; wait
