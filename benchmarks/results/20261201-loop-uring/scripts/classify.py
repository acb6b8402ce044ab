#!/usr/bin/env python3
# Reads `perf script -F comm,tid,ip,sym,dso` output (callchains) from stdin and
# splits the samples: user space, and kernel time by the nearest frame (from
# the leaf up) that names a category.
import sys, re, collections
cats = [
    ("io_uring", re.compile(r'^(io_|__io_|io_uring)')),
    ("epoll", re.compile(r'(^ep_|epoll)')),
    ("scheduling, wake-ups, futex", re.compile(r'(schedule|^futex|__futex|try_to_wake_up|ttwu|pick_next|enqueue_task|dequeue_task|finish_task_switch|hrtimer_nanosleep|do_nanosleep|sched_yield|__switch_to|update_curr|idle)')),
    ("TCP/IP, loopback, socket copy", re.compile(r'(^tcp_|^__tcp|^ip_|^__ip|^inet_|^sock_|^__sock|^sk_|^skb_|^__skb|^kfree_skb|^consume_skb|net_rx|netif|^__dev_queue|dev_hard_start|loopback|^release_sock|^lock_sock|_copy_to_iter|_copy_from_iter|copy_user|^__napi|^napi|^do_softirq|^__do_softirq|^__local_bh|^tcp|^ipv4|^__netif|^sock|^security_sock)')),
    ("syscall entry/exit", re.compile(r'(entry_SYSCALL|do_syscall|syscall_exit|syscall_enter|__x64_sys|x64_sys_call|exit_to_user|syscall_return)')),
    ("page faults, memory", re.compile(r'(page_fault|do_anonymous|handle_mm|__handle_mm|alloc_pages|folio|clear_page|memcg)')),
]
samples = collections.Counter()
total = 0
def flush(frames):
    global total
    if not frames:
        return
    total += 1
    leafdso = frames[0][1]
    if 'kernel' not in leafdso and 'vdso' not in leafdso:
        samples["user space (Go runtime, netcore, redis-server)"] += 1
        return
    for sym, dso in frames:
        if 'kernel' not in dso:
            break
        for name, rx in cats:
            if rx.search(sym):
                samples["kernel: " + name] += 1
                return
    samples["kernel: other"] += 1
frames = []
for line in sys.stdin:
    line = line.rstrip('\n')
    if not line.strip():
        flush(frames); frames = []
        continue
    if not line.startswith((' ', '\t')):
        flush(frames); frames = []
        continue
    m = re.match(r'\s+[0-9a-f]+\s+(\S+?)(\+0x[0-9a-f]+)?\s+\((.*)\)$', line)
    if m:
        frames.append((m.group(1), m.group(3)))
flush(frames)
for k, v in sorted(samples.items(), key=lambda kv: -kv[1]):
    print(f"{100*v/total:5.1f}%  {k}")
print(f"({total} samples)")
