#!/usr/bin/env bash
# Measures the RESP example (examples/resp) beside redis-server with the real
# redis-benchmark, on loopback: for each load and each test, requests per
# second (as redis-benchmark reports them) and the server's CPU time per
# request (user + system, from /proc/PID/stat before and after the run).
#
#   scripts/redis-bench.sh                    # 200000 requests per run: the README's table
#   N=2000 scripts/redis-bench.sh             # a quick check that it all works
#   TARGETS='redis loop' LOADS='-c 50 -P 1' TESTS=get scripts/redis-bench.sh
#
# TARGETS names the servers: "redis" (redis-server, no persistence) and the
# example's modes ("loop": netcore.Loop, event loops, one per GOMAXPROCS, its
# default; "loop1": the same with -loops 1; "loop-spin": the default with
# -spin-wait 50us (Loop.SpinWait); "server": netcore.Server, a
# goroutine per connection; "server-blocking": the same on netcore's
# blocking fast path). Each runs in
# its own process, started once; every run goes to each target in turn, so a
# slow stretch of the machine hits all of them alike. redis-benchmark itself
# needs about a core: requests/s saturates, and CPU per request is the
# figure that separates servers. Per target the table shows requests per
# second, the server's CPU time per request (user + system, from
# /proc/PID/stat) and its context switches per request (voluntary and
# involuntary, every thread, from /proc/PID/task/*/status); with "redis"
# among the targets, the others' CPU per request also as a ratio to
# redis-server's (below 1: cheaper than redis-server).
#
# TLS=1 measures everything over TLS instead: each server listens only on a
# TLS port (redis-server's --tls-port, the example's -tls-port, served by
# Loop.ServeTLS in loop mode), with a throw-away ECDSA P-256 certificate made
# by openssl and no client certificates, and redis-benchmark runs with --tls.
#
# ROUNDS=K runs the whole table K times (interleaved: each round goes
# through every load and target) and prints the median of each cell.
# RAW=FILE keeps every run's figures there, a line per run (tab-separated:
# round, load, test, target, req/s, CPU us/req, ctxsw/req, syscalls/req).
#
# SYSCALLS=1 (off by default) also counts each server's system calls per
# request: perf stat on the raw_syscalls:sys_enter tracepoint, attached to
# the server (every thread) with its counter enabled just before each
# redis-benchmark run and disabled just after (perf's --control), adds a
# "syscalls/req" column. It needs perf and the right to trace the servers
# (root, or a low enough kernel.perf_event_paranoid), and fails at once
# without them. The tracepoint costs the server some CPU on every call, so
# the CPU columns of such a run lean against the servers that make more
# calls (redis-server's read/write/epoll_wait against io_uring_enter).
set -euo pipefail
RAW=${RAW:+$(realpath -m -- "$RAW")} # before the cd: relative to where the script was started
cd "$(dirname "$0")/.."

N=${N:-200000}
TARGETS=${TARGETS:-redis loop loop1 server}
ROUNDS=${ROUNDS:-1}
TESTS=${TESTS:-ping_mbulk set get}
LOADS=${LOADS:-"-c 50 -P 1;-c 1000 -P 1;-c 50 -P 16"}
TLS=${TLS:-0}
SYSCALLS=${SYSCALLS:-0}

for tool in redis-server redis-benchmark; do
	command -v "$tool" >/dev/null || { echo "redis-bench: $tool not found (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
if [ "$SYSCALLS" = 1 ]; then
	command -v perf >/dev/null || { echo "redis-bench: SYSCALLS=1 needs perf (apt-get install linux-perf), which is not installed" >&2; exit 1; }
fi

dir=$(mktemp -d)
pids=()
perfpid=
cleanup() {
	if [ -n "$perfpid" ]; then kill "$perfpid" 2>/dev/null || true; wait "$perfpid" 2>/dev/null || true; fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT

go build -o "$dir/resp" ./examples/resp

tlsbench=()
if [ "$TLS" = 1 ]; then
	command -v openssl >/dev/null || { echo "redis-bench: TLS=1 needs openssl (apt-get install openssl)" >&2; exit 1; }
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
		-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
	tlsbench=(--tls --cacert "$dir/tls.crt")
fi

# freeport asks the kernel for a free loopback port: bind port 0, read the
# port, release it. redis-server cannot listen on port 0 and report the port,
# so it gets this one; another process could take the port in between (then
# redis-server fails to start and the script says so).
cat > "$dir/freeport.go" <<'EOF'
package main

import (
	"fmt"
	"net"
)

func main() {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	l.Close()
}
EOF
go build -o "$dir/freeport" "$dir/freeport.go"

# waitline FILE PATTERN PID: wait (at most 10 s) for PATTERN in FILE.
waitline() {
	for _ in $(seq 100); do
		grep -qs "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || { echo "redis-bench: server exited:" >&2; cat "$1" >&2; exit 1; }
		sleep 0.1
	done
	echo "redis-bench: server did not start:" >&2; cat "$1" >&2; exit 1
}

declare -A port pid
for target in $TARGETS; do
	log="$dir/$target.log"
	case $target in
	redis)
		p=$("$dir/freeport")
		listen=(--port "$p")
		if [ "$TLS" = 1 ]; then
			listen=(--port 0 --tls-port "$p" --tls-cert-file "$dir/tls.crt" --tls-key-file "$dir/tls.key" --tls-auth-clients no)
		fi
		redis-server --bind 127.0.0.1 "${listen[@]}" --save '' --appendonly no --daemonize no >"$log" 2>&1 &
		pid[$target]=$!; pids+=($!)
		waitline "$log" "Ready to accept connections" "${pid[$target]}"
		port[$target]=$p
		;;
	loop | loop1 | loop-spin | uring | uring1 | server | server-blocking)
		args=(-addr 127.0.0.1:0)
		case $target in
		loop) args+=(-mode loop -backend epoll) ;;
		loop1) args+=(-mode loop -backend epoll -loops 1) ;;
		uring) args+=(-mode loop -backend io_uring) ;;
		uring1) args+=(-mode loop -backend io_uring -loops 1) ;;
		loop-spin) args+=(-mode loop -backend epoll -spin-wait 50us) ;;
		server) args+=(-mode server) ;;
		server-blocking) args+=(-mode server -blocking) ;;
		esac
		if [ "$TLS" = 1 ]; then
			args+=(-port 0 -tls-port "$("$dir/freeport")" -tls-cert-file "$dir/tls.crt" -tls-key-file "$dir/tls.key" -tls-auth-clients no)
		fi
		"$dir/resp" "${args[@]}" >"$log" 2>&1 &
		pid[$target]=$!; pids+=($!)
		waitline "$log" '^listening on ' "${pid[$target]}"
		port[$target]=$(awk '/^listening on /{n=split($3,a,":"); print a[n]; exit}' "$log")
		;;
	*)
		echo "redis-bench: unknown target $target" >&2; exit 1
		;;
	esac
done

tck=$(getconf CLK_TCK)
# cputicks PID: user + system time of the process, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# ctxsw PID: context switches of the process's threads so far.
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches:/{n += $2} END{print n}'; }

# perf stat counting one server's system calls, while enabled (SYSCALLS=1):
# perfstart PID attaches it, disabled, then enables it and waits for perf's
# ack; perfstop disables it, ends perf and sets calls to the count ("bad"
# if perf printed none).
if [ "$SYSCALLS" = 1 ]; then
	mkfifo "$dir/perf.ctl" "$dir/perf.ack"
fi
perfcmd() {
	echo "$1" >&"$perfctl"
	local ack=
	if ! read -r -t 10 -u "$perfack" ack || [ "$ack" != ack ]; then
		echo "redis-bench: perf stat did not acknowledge '$1' (can it trace the server? root, or kernel.perf_event_paranoid):" >&2
		cat "$dir/perf.err" "$dir/perf.out" >&2 2>/dev/null
		exit 1
	fi
}
perfstart() {
	rm -f "$dir/perf.out"
	perf stat -x, -e raw_syscalls:sys_enter --delay -1 --control "fifo:$dir/perf.ctl,$dir/perf.ack" \
		-p "$1" -o "$dir/perf.out" 2>"$dir/perf.err" &
	perfpid=$!
	# Opened read-write, a FIFO does not wait for perf to open its end: if
	# perf fails, the read of its ack times out (perfcmd) instead of an
	# open waiting for ever.
	exec {perfctl}<>"$dir/perf.ctl" {perfack}<>"$dir/perf.ack"
	perfcmd enable
}
perfstop() {
	perfcmd disable
	exec {perfctl}>&- {perfack}<&-
	kill -INT "$perfpid" 2>/dev/null || true
	wait "$perfpid" 2>/dev/null || true
	perfpid=
	# "COUNT,,raw_syscalls:sys_enter,..."; "<not counted>" if the server
	# never ran while enabled (so made no calls).
	calls=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print ($1 ~ /^[0-9]+$/ ? $1 : ($1 == "<not counted>" ? 0 : "bad")); found = 1 }
		END { if (!found) print "bad" }' "$dir/perf.out")
}

# One run per round, load, test and target: "round load test target rps us
# cs sc" (sc: system calls per request, "-" without SYSCALLS=1).
results="$dir/results"
IFS=';' read -ra loads <<<"$LOADS"
for round in $(seq "$ROUNDS"); do
	[ "$ROUNDS" -gt 1 ] && echo "round $round/$ROUNDS" >&2
	for load in "${loads[@]}"; do
		for test in $TESTS; do
			for target in $TARGETS; do
				if [ "$SYSCALLS" = 1 ]; then
					perfstart "${pid[$target]}"
				fi
				before=$(cputicks "${pid[$target]}")
				cs0=$(ctxsw "${pid[$target]}")
				# shellcheck disable=SC2086 # $load is a list of flags
				csv=$(redis-benchmark -h 127.0.0.1 -p "${port[$target]}" "${tlsbench[@]}" $load -n "$N" -t "$test" --csv 2>"$dir/bench.err") || {
					echo "redis-bench: redis-benchmark failed against $target:" >&2; cat "$dir/bench.err" >&2; exit 1
				}
				if grep -qi error "$dir/bench.err" || grep -qi error <<<"$csv"; then
					echo "redis-bench: errors against $target:" >&2; cat "$dir/bench.err" >&2; exit 1
				fi
				after=$(cputicks "${pid[$target]}")
				cs1=$(ctxsw "${pid[$target]}")
				sc=-
				if [ "$SYSCALLS" = 1 ]; then
					perfstop
					if [ "$calls" = bad ]; then
						echo "redis-bench: perf stat counted no system calls of $target:" >&2; cat "$dir/perf.out" "$dir/perf.err" >&2; exit 1
					fi
					sc=$(awk -v c="$calls" -v n="$N" 'BEGIN{printf "%.3f", c / n}')
				fi
				rps=$(awk -F'"' 'NR==2{print $4}' <<<"$csv")
				[ -n "$rps" ] || { echo "redis-bench: no result from redis-benchmark against $target: $csv" >&2; exit 1; }
				us=$(awk -v d=$((after - before)) -v t="$tck" -v n="$N" 'BEGIN{printf "%.3f", d * 1e6 / t / n}')
				cs=$(awk -v d=$((cs1 - cs0)) -v n="$N" 'BEGIN{printf "%.3f", d / n}')
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$load" "$test" "$target" "$rps" "$us" "$cs" "$sc" >>"$results"
			done
		done
	done
done

if [ -n "$RAW" ]; then
	cp "$results" "$RAW"
fi
[ "$TLS" = 1 ] && printf 'over TLS (redis-benchmark --tls), '
[ "$SYSCALLS" = 1 ] && printf 'system calls counted by perf stat (raw_syscalls:sys_enter) in every run, '
printf '%s\n' "redis-benchmark, $N requests per run, median of $ROUNDS round(s), $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%d)"
awk -F'\t' -v targets="$TARGETS" -v loads="$LOADS" -v tests="$TESTS" -v syscalls="$SYSCALLS" '
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{ k = $2 SUBSEP $3 SUBSEP $4; rps[k] = rps[k] " " $5; us[k] = us[k] " " $6; cs[k] = cs[k] " " $7; sc[k] = sc[k] " " $8 }
END {
	nt = split(targets, T, " "); nl = split(loads, L, ";"); nx = split(tests, X, " ")
	hasredis = 0; for (i = 1; i <= nt; i++) if (T[i] == "redis") hasredis = 1
	h = "| load | test |"; r = "| --- | --- |"
	for (i = 1; i <= nt; i++) {
		h = h " " T[i] " req/s | " T[i] " CPU us/req | " T[i] " ctxsw/req |"; r = r " --- | --- | --- |"
		if (syscalls == 1) { h = h " " T[i] " syscalls/req |"; r = r " --- |" }
		if (hasredis && T[i] != "redis") { h = h " " T[i] " CPU vs redis |"; r = r " --- |" }
	}
	print h; print r
	for (li = 1; li <= nl; li++) for (xi = 1; xi <= nx; xi++) {
		row = "| " L[li] " | " X[xi] " |"
		if (hasredis) base = median(us[L[li], X[xi], "redis"])
		for (i = 1; i <= nt; i++) {
			k = L[li] SUBSEP X[xi] SUBSEP T[i]
			u = median(us[k])
			row = row sprintf(" %.0f | %.2f | %.2f |", median(rps[k]), u, median(cs[k]))
			if (syscalls == 1) row = row sprintf(" %.2f |", median(sc[k]))
			if (hasredis && T[i] != "redis") row = row (base > 0 ? sprintf(" %.2fx |", u / base) : " - |")
		}
		print row
	}
}' "$results"
