package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// driverConfig configures the driver role.
type driverConfig struct {
	Time    time.Duration // how long the clients run against each server
	Servers string        // "server,blocking,loop"
	Clients string        // the client mix, "kind=n,..."
	Seed    int64
	Limits  limits
	Exe     string    // the program to start with -role server and client; this one if empty
	Env     []string  // added to the children's environment
	Log     io.Writer // progress and the clients' first errors; os.Stderr if nil
}

// labels name the servers in the report.
var labels = map[string]string{
	"server":     "Server",
	"blocking":   "Server, blocking",
	"loop":       "Loop",
	"loop-tls":   "Loop, TLS",
	"server-tls": "Server, TLS",
}

// serverRun is the soak of one server: the figures and what failed.
type serverRun struct {
	Mode        string
	Clients     clientResult
	Before      serverStats // after a warm-up, before the clients
	After       serverStats // once the server is idle again
	Bye         serverStats // at the end, after Shutdown
	ProcBefore  procStats
	ProcAfter   procStats
	PeakFDs     int
	PeakThreads int
	PeakRSS     int64 // the largest VmRSS sampled: VmHWM, which the kernel updates lazily, was seen below it
	PeakGo      int
	Bound       int64         // peak RSS allowed
	Settle      time.Duration // how long the server took to be idle again
	Failures    []string
}

func (r *serverRun) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// drive is the driver role: it soaks each server of d.Servers in turn and
// prints the report to out. ok is false if any check failed.
func drive(d driverConfig, out io.Writer) (ok bool, err error) {
	if d.Log == nil {
		d.Log = os.Stderr
	}
	if d.Exe == "" {
		if d.Exe, err = os.Executable(); err != nil {
			return false, err
		}
	}
	if _, err := parseMix(d.Clients); err != nil {
		return false, err
	}
	if d.Seed == 0 {
		d.Seed = time.Now().UnixNano()
	}
	var runs []*serverRun
	for _, mode := range strings.Split(d.Servers, ",") {
		if labels[mode] == "" {
			return false, fmt.Errorf("unknown server %q in -servers (server, blocking, loop, loop-tls, server-tls)", mode)
		}
		fmt.Fprintf(d.Log, "soak: %s: %v of clients (%s)\n", labels[mode], d.Time, d.Clients)
		r := soak(d, mode)
		for _, f := range r.Failures {
			fmt.Fprintf(d.Log, "soak: %s: FAIL: %s\n", labels[mode], f)
		}
		runs = append(runs, r)
	}
	report(out, d, runs)
	ok = true
	for _, r := range runs {
		ok = ok && len(r.Failures) == 0
	}
	return ok, nil
}

// soak runs the clients against one server and checks it.
func soak(d driverConfig, mode string) *serverRun {
	r := &serverRun{Mode: mode}
	lim := d.Limits
	srv, addr, cert, err := startServer(d, mode)
	if err != nil {
		r.fail("starting the server: %v", err)
		return r
	}
	defer srv.kill()
	var tlsConfig *tls.Config
	if cert != "" {
		if tlsConfig, err = clientTLSConfig(cert); err != nil {
			r.fail("the server's certificate: %v", err)
			return r
		}
	}

	// Warm up (whatever the runtime sets up lazily is then in the
	// baseline), and wait until the warm-up connection is gone.
	if err := warmUp(addr, tlsConfig); err != nil {
		r.fail("warm-up round trips: %v", err)
		return r
	}
	if r.Before, r.ProcBefore, err = srv.waitIdle(srv.pid(), 5*time.Second, nil, nil); err != nil {
		r.fail("before the clients: %v", err)
		return r
	}

	// The clients, in their own process; the server is sampled meanwhile.
	args := append([]string{"-role=client", "-addr=" + addr,
		"-time=" + d.Time.String(), "-clients=" + d.Clients, fmt.Sprintf("-seed=%d", d.Seed)}, lim.args()...)
	if cert != "" {
		args = append(args, "-cert="+cert)
	}
	client := exec.Command(d.Exe, args...)
	client.Env = append(os.Environ(), d.Env...)
	var clientOut bytes.Buffer
	client.Stdout, client.Stderr = &clientOut, d.Log
	if err := client.Start(); err != nil {
		r.fail("starting the clients: %v", err)
		return r
	}
	clientDone := make(chan error, 1)
	go func() { clientDone <- client.Wait() }()
	clientBound := d.Time + 2*opTimeout + lim.dropBound() + 30*time.Second
	deadline := time.NewTimer(clientBound)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	r.PeakFDs, r.PeakThreads, r.PeakGo = r.ProcBefore.FDs, r.ProcBefore.Threads, r.Before.Goroutines
	// Every 10 s, a progress line: the rate and the resources now.
	started, lastRequests, nextProgress := time.Now(), int64(0), 10*time.Second
	sample := func() {
		ps, perr := readProc(srv.pid())
		if perr == nil {
			r.PeakFDs, r.PeakThreads = max(r.PeakFDs, ps.FDs), max(r.PeakThreads, ps.Threads)
			r.PeakRSS = max(r.PeakRSS, ps.RSS)
		}
		st, serr := srv.stats()
		if serr == nil {
			r.PeakGo = max(r.PeakGo, st.Goroutines)
		}
		if since := time.Since(started); since >= nextProgress && perr == nil && serr == nil {
			fmt.Fprintf(d.Log, "soak: %s: %v: %d requests/s, %d connections, %d descriptors, %d goroutines, %d threads, RSS %s\n",
				labels[mode], nextProgress, (st.Requests-lastRequests)/10, st.Open, ps.FDs, st.Goroutines, ps.Threads, mib(ps.RSS))
			lastRequests, nextProgress = st.Requests, nextProgress+10*time.Second
		}
	}
wait:
	for {
		select {
		case err := <-clientDone:
			if err != nil {
				r.fail("the client process: %v", err)
			}
			break wait
		case <-tick.C:
			sample()
		case <-deadline.C:
			client.Process.Kill()
			<-clientDone
			r.fail("the clients had not finished %v after they started", clientBound)
			return r
		}
	}
	line, _, _ := bytes.Cut(clientOut.Bytes(), []byte("\n"))
	rest, ok := bytes.CutPrefix(line, []byte("result "))
	if !ok || json.Unmarshal(rest, &r.Clients) != nil {
		r.fail("the clients reported %q, want a result line", line)
		return r
	}

	// All clients are gone: descriptors and goroutines must come back to
	// the baseline within a bounded wait (lingering closes, idle timeouts
	// and write deadlines included).
	settleBound := lim.IdleTimeout + lim.WriteTimeout + lim.LingerTimeout + 10*time.Second
	start := time.Now()
	r.After, r.ProcAfter, err = srv.waitIdle(srv.pid(), settleBound, &r.Before, &r.ProcBefore)
	r.Settle = time.Since(start)
	if err != nil {
		r.fail("after the clients: %v", err)
	}
	if ps, err := readProc(srv.pid()); err == nil {
		r.ProcAfter.HWM = max(ps.HWM, r.PeakRSS)
	}

	// Graceful shutdown.
	if r.Bye, err = srv.quit(); err != nil {
		r.fail("shutdown: %v", err)
	}
	r.check(d)
	return r
}

// check records what the figures say failed.
func (r *serverRun) check(d driverConfig) {
	lim := d.Limits
	var wellReplies int64
	for _, k := range kinds {
		t := r.Clients.Kinds[k]
		if t == nil {
			continue
		}
		if wellBehaved(k) {
			wellReplies += t.Requests
		}
		if t.Errors > 0 {
			r.fail("%d %s clients failed, first: %s", t.Errors, k, strings.Join(t.Samples, "; "))
		}
	}
	if wellReplies == 0 {
		r.fail("no well-behaved client got a reply: nothing was soaked")
	}
	if r.Bye.Requests < wellReplies {
		r.fail("the server answered %d requests, fewer than the %d replies clients verified", r.Bye.Requests, wellReplies)
	}
	if !isLoop(r.Mode) && lim.MaxConns > 0 && r.Bye.PeakOpen > int64(lim.MaxConns) {
		r.fail("%d connections served at once, over MaxConns %d", r.Bye.PeakOpen, lim.MaxConns)
	}
	if isTLS(r.Mode) {
		// Every connection that made the server's handshake fail on
		// purpose is counted as failed, and nothing else is: a
		// well-behaved client's handshake that failed at the server
		// would show here even if the client did not notice.
		var bad int64
		for _, t := range r.Clients.Kinds {
			bad += t.BadTLS
		}
		if r.Bye.TLSHandshakeErrors != bad {
			r.fail("the server counted %d failed TLS handshakes, want %d (the clients' stall, badhello and vanish connections, and handshakes the run's end cut short)", r.Bye.TLSHandshakeErrors, bad)
		}
		if r.After.Handshaking != 0 {
			r.fail("%d goroutines still in a TLS handshake once the clients had gone", r.After.Handshaking)
		}
	}
	r.Bound = memoryBound(r.Mode, lim, r.ProcBefore.RSS, r.Bye.PeakOpen)
	if raceEnabled {
		// The race detector's shadow memory is not what the limits bound.
		r.Bound = 0
	} else if r.ProcAfter.HWM > r.Bound {
		r.fail("peak RSS %s over the bound of %s (%d connections at most)", mib(r.ProcAfter.HWM), mib(r.Bound), r.Bye.PeakOpen)
	}
}

// perConn is the memory one connection may hold under the limits: for the
// Loop its input and output bounds; for the Server its FrameReader's
// buffer (one frame at most) and its batch of replies (flushAt plus one
// frame), each allowed to have grown to twice that by append, and its
// goroutine's stack.
//
// With TLS, add tlsPerConn.
func perConn(mode string, lim limits) int64 {
	frame := int64(4 + maxPayload)
	var extra int64
	if isTLS(mode) {
		extra = tlsPerConn
	}
	if isLoop(mode) {
		return int64(lim.MaxInput+lim.MaxOutput) + extra
	}
	return 2*frame + 2*(flushAt+frame) + 32<<10 + extra
}

// tlsPerConn is what TLS adds to a connection: the Loop's handshake input
// (at most 64 KiB unread) and ciphertext on its way out (about 64 KiB),
// or the Server's *tls.Conn's records in and out (two 16 KiB records, a
// 64 KiB batch of replies sealed at once), and crypto/tls's handshake
// state and its goroutine's stack (32 KiB).
const tlsPerConn = 64<<10 + 64<<10 + 32<<10

// memoryBound is the peak RSS allowed: the server's resident memory before
// the clients, plus twice (the garbage collector's headroom at GOGC=100)
// what the limits let the most connections ever served at once hold, plus
// 16 MiB for the runtime's own growth.
func memoryBound(mode string, lim limits, baseRSS, peakConns int64) int64 {
	return baseRSS + 2*peakConns*perConn(mode, lim) + 16<<20
}

// boundText is the memory bound as the report shows it.
func boundText(b int64) string {
	if b == 0 {
		return "none under -race"
	}
	return mib(b)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// warmUp makes three round trips (0 B, 100 B and 64 KiB) on one
// connection (over TLS with tlsConfig, unless it is nil) and verifies
// them.
func warmUp(addr string, tlsConfig *tls.Config) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		c = tls.Client(c, tlsConfig)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for i, n := range []int{0, 100, maxPayload} {
		q := request{seq: uint64(i), off: i, n: n}
		if _, err := c.Write(q.appendFrame(nil)); err != nil {
			return err
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		got := make([]byte, min(binary.BigEndian.Uint32(hdr[:]), maxPayload+1))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if err := q.check(got); err != nil {
			return err
		}
	}
	return nil
}

// serverProc is a server child process, driven through its stdin and
// stdout.
type serverProc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string // its stdout, line by line; closed at EOF
	stderr *syncBuffer
	done   chan error // cmd.Wait's result, once
	exited bool
}

// syncBuffer is a bytes.Buffer for a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer starts a server child and returns its address and, for a
// TLS server, its certificate (DER, base64).
func startServer(d driverConfig, mode string) (_ *serverProc, addr, cert string, err error) {
	cmd := exec.Command(d.Exe, append([]string{"-role=server", "-mode=" + mode}, d.Limits.args()...)...)
	cmd.Env = append(os.Environ(), d.Env...)
	s := &serverProc{cmd: cmd, lines: make(chan string, 16), stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if s.in, err = cmd.StdinPipe(); err != nil {
		return nil, "", "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", "", err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 4<<20) // a stats line counts every kind of close
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		s.done <- cmd.Wait() // after the last read, as exec wants
	}()
	addr, err = s.expect("listening on ", 10*time.Second)
	if err == nil && isTLS(mode) {
		cert, err = s.expect("certificate ", 10*time.Second)
	}
	if err != nil {
		s.kill()
		return nil, "", "", err
	}
	return s, addr, cert, nil
}

func (s *serverProc) pid() int { return s.cmd.Process.Pid }

// expect returns the rest of the server's next line, which must start with
// prefix and come within timeout.
func (s *serverProc) expect(prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-s.lines:
		if !ok {
			return "", fmt.Errorf("the server exited; its stderr:\n%s", s.stderr)
		}
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			return "", fmt.Errorf("the server said %q, want %q...", line, prefix)
		}
		return rest, nil
	case <-t.C:
		return "", fmt.Errorf("the server did not say %q... within %v", prefix, timeout)
	}
}

// stats asks the server for its figures.
func (s *serverProc) stats() (serverStats, error) {
	var st serverStats
	if _, err := io.WriteString(s.in, "stats\n"); err != nil {
		return st, err
	}
	line, err := s.expect("stats ", 5*time.Second)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(line), &st)
}

// waitIdle waits, for at most bound, until the server serves no
// connection and then: without a base, until its goroutines and
// descriptors hold still between two looks 100 ms apart (the goroutines
// that close a connection after its handler returned are gone); with
// one, until they are back to base's and baseProc's (or below). It
// returns the last figures seen.
func (s *serverProc) waitIdle(pid int, bound time.Duration, base *serverStats, baseProc *procStats) (serverStats, procStats, error) {
	end := time.Now().Add(bound)
	var last serverStats
	var lastProc procStats
	for {
		st, err := s.stats()
		if err != nil {
			return st, procStats{}, err
		}
		ps, err := readProc(pid)
		if err != nil {
			return st, ps, err
		}
		idle := st.Open == 0
		if base != nil {
			idle = idle && st.Goroutines <= base.Goroutines && ps.FDs <= baseProc.FDs
		} else {
			idle = idle && last.Goroutines == st.Goroutines && lastProc.FDs == ps.FDs
			last, lastProc = st, ps
		}
		if idle {
			return st, ps, nil
		}
		if time.Now().After(end) {
			if base == nil {
				return st, ps, fmt.Errorf("still %d connections open after %v", st.Open, bound)
			}
			return st, ps, fmt.Errorf("not back to the baseline %v after the clients left: %d connections open, %d descriptors (%d before), %d goroutines (%d before)",
				bound, st.Open, ps.FDs, baseProc.FDs, st.Goroutines, base.Goroutines)
		}
		time.Sleep(100 * time.Millisecond) // polling /proc: nothing to wait on
	}
}

// quit shuts the server down gracefully and waits for it to exit.
func (s *serverProc) quit() (serverStats, error) {
	var st serverStats
	if _, err := io.WriteString(s.in, "quit\n"); err != nil {
		return st, err
	}
	line, err := s.expect("bye ", 15*time.Second)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		return st, err
	}
	select {
	case err := <-s.done:
		s.exited = true
		if err != nil {
			return st, fmt.Errorf("the server exited with %v; its stderr:\n%s", err, s.stderr)
		}
	case <-time.After(15 * time.Second):
		return st, errors.New("the server did not exit within 15 s of its shutdown")
	}
	return st, nil
}

// kill ends the server if it is still running.
func (s *serverProc) kill() {
	if s.exited {
		return
	}
	s.in.Close()
	s.cmd.Process.Kill()
	for range s.lines {
	}
	<-s.done
	s.exited = true
}

// report prints the figures as markdown tables, then the failures.
func report(w io.Writer, d driverConfig, runs []*serverRun) {
	lim := d.Limits
	fmt.Fprintf(w, "\nsoak: %v per server; clients at once: %s; seed %d\n", d.Time, d.Clients, d.Seed)
	fmt.Fprintf(w, "limits: Server MaxConns %d, IdleTimeout %v, LingerTimeout %v, handler write deadline %v; Loop MaxInput %d, MaxOutput %d, IdleTimeout %v, LingerTimeout %v; TLS handshake timeout %v\n\n",
		lim.MaxConns, lim.IdleTimeout, lim.LingerTimeout, lim.WriteTimeout, lim.MaxInput, lim.MaxOutput, lim.IdleTimeout, lim.LingerTimeout, lim.HandshakeTimeout)
	fmt.Fprintln(w, "| server | requests served | replies verified | bytes verified | well-behaved errors | other failures | peak conns | peak RSS (bound) | fds before → after (peak) | goroutines before → after (peak) | threads (peak) | idle again after | result |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range runs {
		var replies, byts, wellErr, otherErr int64
		for k, t := range r.Clients.Kinds {
			if wellBehaved(k) {
				replies += t.Requests
				byts += t.Bytes
				wellErr += t.Errors
			} else {
				otherErr += t.Errors
			}
		}
		result := "ok"
		if len(r.Failures) > 0 {
			result = "FAIL"
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %d | %d | %d | %s (%s) | %d → %d (%d) | %d → %d (%d) | %d | %v | %s |\n",
			labels[r.Mode], r.Bye.Requests, replies, mib(byts), wellErr, otherErr, r.Bye.PeakOpen,
			mib(r.ProcAfter.HWM), boundText(r.Bound), r.ProcBefore.FDs, r.ProcAfter.FDs, r.PeakFDs,
			r.Before.Goroutines, r.After.Goroutines, r.PeakGo, r.PeakThreads, r.Settle.Round(100*time.Millisecond), result)
	}

	fmt.Fprintf(w, "\n| clients: connections (outcome) |")
	for _, r := range runs {
		fmt.Fprintf(w, " %s |", labels[r.Mode])
	}
	fmt.Fprintf(w, "\n| --- |%s\n", strings.Repeat(" ---: |", len(runs)))
	for _, k := range kinds {
		ran := false
		for _, r := range runs {
			ran = ran || r.Clients.Kinds[k] != nil
		}
		if !ran {
			continue // a TLS kind, and no TLS server
		}
		fmt.Fprintf(w, "| %s |", k)
		for _, r := range runs {
			t := r.Clients.Kinds[k]
			if t == nil {
				fmt.Fprintf(w, " |")
				continue
			}
			var what string
			switch k {
			case kindNever:
				what = fmt.Sprintf("%d dropped by limits, longest wait %v", t.Dropped, time.Duration(t.MaxDrop).Round(10*time.Millisecond))
			case kindIdle:
				what = fmt.Sprintf("%d closed by IdleTimeout, longest wait %v", t.Dropped, time.Duration(t.MaxDrop).Round(10*time.Millisecond))
			case kindGarbage, kindBadHello:
				what = fmt.Sprintf("%d answered and closed: %d EOF, %d reset", t.Dropped, t.EOFs, t.Resets)
			case kindVanish:
				what = "gone at once"
			case kindStall:
				what = fmt.Sprintf("%d closed by the handshake timeout, longest wait %v", t.Dropped, time.Duration(t.MaxDrop).Round(10*time.Millisecond))
			case kindResume:
				what = fmt.Sprintf("%d replies verified, %d resumed", t.Requests, t.Resumed)
			default:
				what = fmt.Sprintf("%d replies verified", t.Requests)
			}
			if t.Errors > 0 {
				what += fmt.Sprintf(", %d FAILED", t.Errors)
			}
			fmt.Fprintf(w, " %d (%s) |", t.Conns, what)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w)
	for _, r := range runs {
		if isTLS(r.Mode) {
			var bad int64
			for _, t := range r.Clients.Kinds {
				bad += t.BadTLS
			}
			fmt.Fprintf(w, "%s: TLS handshakes %d succeeded, %d failed (the clients made %d fail)\n",
				labels[r.Mode], r.Bye.TLSHandshakes, r.Bye.TLSHandshakeErrors, bad)
		}
	}
	for _, r := range runs {
		fmt.Fprintf(w, "%s: connections ended by", labels[r.Mode])
		for _, k := range sortedKeys(r.Bye.Closes) {
			fmt.Fprintf(w, " %s %d;", k, r.Bye.Closes[k])
		}
		if len(r.Bye.Logged) > 0 {
			fmt.Fprintf(w, " logged:")
			for _, k := range sortedKeys(r.Bye.Logged) {
				fmt.Fprintf(w, " %q %d;", k, r.Bye.Logged[k])
			}
		}
		fmt.Fprintln(w)
	}
	for _, r := range runs {
		for _, f := range r.Failures {
			fmt.Fprintf(w, "FAIL %s: %s\n", labels[r.Mode], f)
		}
	}
}
