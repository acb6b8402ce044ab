package main

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The driver starts this test binary as its server and client processes,
// with childEnv set.
const childEnv = "NETCORE_SOAK_TEST_CHILD=1"

func TestMain(m *testing.M) {
	if os.Getenv("NETCORE_SOAK_TEST_CHILD") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// shortLimits are limits that act within a short run.
var shortLimits = limits{
	MaxConns:      16,
	IdleTimeout:   time.Second,
	WriteTimeout:  500 * time.Millisecond,
	MaxInput:      128 << 10,
	MaxOutput:     512 << 10,
	LingerTimeout: 300 * time.Millisecond,

	HandshakeTimeout: 500 * time.Millisecond,
}

func soakConfig(t *testing.T, servers, clients string, lim limits) driverConfig {
	if runtime.GOOS != "linux" {
		t.Skip("netcore serves on Linux only")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return driverConfig{Time: 2 * time.Second, Servers: servers, Clients: clients, Limits: lim,
		Exe: exe, Env: []string{childEnv}, Log: testWriter{t}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestSoak runs the whole soak briefly, processes and all, against each
// server: it must pass, and every kind of client must have met the
// server in the way its kind is about.
func TestSoak(t *testing.T) {
	out := soakPasses(t, "server,blocking,loop", "pipeline=4,slow=2,halfclose=2,never=2,reset=2,garbage=2,idle=2,vanish=2")
	for _, want := range []string{"| pipeline |", "| never |", "| garbage |", "| idle |", "| vanish |"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report has no %q row", want)
		}
	}
}

// TestSoakTLS runs the soak briefly against the TLS servers, with the
// clients that only they meet: a handshake that stalls, a bad ClientHello,
// sessions resumed.
func TestSoakTLS(t *testing.T) {
	servers := "loop-tls,server-tls"
	out := soakPasses(t, servers, "pipeline=3,slow=1,halfclose=1,resume=2,never=2,reset=1,garbage=2,idle=1,vanish=1,stall=2,badhello=2")
	for _, mode := range strings.Split(servers, ",") {
		if !strings.Contains(out, "\n"+labels[mode]+": TLS handshakes ") {
			t.Errorf("%s: no line counting the TLS handshakes", mode)
		}
	}
	for _, want := range []string{"| resume |", "| stall |", "| badhello |", " resumed)", "closed by the handshake timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report has no %q", want)
		}
	}
}

// soakPasses runs the soak briefly against servers with clients, and
// fails t unless it passes with an "ok" report row for every server; it
// returns the report.
func soakPasses(t *testing.T, servers, clients string) string {
	t.Helper()
	var out bytes.Buffer
	ok, err := drive(soakConfig(t, servers, clients, shortLimits), &out)
	t.Logf("%s", out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("the soak failed")
	}
	for _, mode := range strings.Split(servers, ",") {
		row := ""
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(line, "| "+labels[mode]+" |") {
				row = line
			}
		}
		if !strings.HasSuffix(row, "| ok |") {
			t.Errorf("%s: report row %q, want one ending in ok", mode, row)
		}
	}
	return out.String()
}

// TestSoakCatchesClientThatHoldsOn: with no write deadline in the Server's
// handler, a client that never reads keeps its handler (IdleTimeout bounds
// reads only). The soak must say so and fail.
func TestSoakCatchesClientThatHoldsOn(t *testing.T) {
	if testing.Short() {
		t.Skip("takes the drop bound, about 6 s")
	}
	lim := shortLimits
	lim.WriteTimeout = 0
	d := soakConfig(t, "server", "pipeline=1,never=1", lim)
	d.Time = lim.dropBound() + time.Second
	var out bytes.Buffer
	ok, err := drive(d, &out)
	t.Logf("%s", out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatal("the soak passed with a handler that lets a client that never reads hold on")
	}
	if !strings.Contains(out.String(), "never dropped") {
		t.Errorf("the report does not say that a client that never reads was never dropped")
	}
}

// TestChecks: each check fails the run on the figures it guards.
func TestChecks(t *testing.T) {
	good := func() *serverRun {
		return &serverRun{
			Mode: "server",
			Clients: clientResult{Kinds: map[string]*tally{
				kindPipeline: {Conns: 10, Requests: 100, Bytes: 1000},
				kindNever:    {Conns: 2, Dropped: 2},
			}},
			Bye:        serverStats{Requests: 120, PeakOpen: 8},
			ProcBefore: procStats{RSS: 10 << 20},
			ProcAfter:  procStats{HWM: 12 << 20},
		}
	}
	d := driverConfig{Limits: shortLimits}
	r := good()
	r.check(d)
	if len(r.Failures) != 0 {
		t.Fatalf("good figures failed: %q", r.Failures)
	}
	for _, tc := range []struct {
		name  string
		spoil func(*serverRun)
		want  string
	}{
		{"a reply lost", func(r *serverRun) { r.Clients.Kinds[kindPipeline].Errors = 1 }, "pipeline clients failed"},
		{"a limit that did not act", func(r *serverRun) { r.Clients.Kinds[kindNever].Errors = 1 }, "never clients failed"},
		{"nothing soaked", func(r *serverRun) { r.Clients.Kinds[kindPipeline].Requests = 0 }, "nothing was soaked"},
		{"fewer answers than replies", func(r *serverRun) { r.Bye.Requests = 99 }, "fewer than"},
		{"over MaxConns", func(r *serverRun) { r.Bye.PeakOpen = 17 }, "over MaxConns"},
		{"memory", func(r *serverRun) { r.ProcAfter.HWM = 1 << 30 }, "over the bound"},
		{"a bad handshake not counted", func(r *serverRun) { r.Mode = "loop-tls"; r.Clients.Kinds[kindStall] = &tally{Conns: 3, BadTLS: 3} }, "counted 0 failed TLS handshakes, want 3"},
		{"a good handshake failed", func(r *serverRun) { r.Mode = "server-tls"; r.Bye.TLSHandshakeErrors = 1 }, "counted 1 failed TLS handshakes, want 0"},
		{"a handshake goroutine left", func(r *serverRun) { r.Mode = "loop-tls"; r.After.Handshaking = 1 }, "still in a TLS handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "memory" && raceEnabled {
				t.Skip("no memory bound under -race")
			}
			r := good()
			tc.spoil(r)
			r.check(d)
			if len(r.Failures) != 1 || !strings.Contains(r.Failures[0], tc.want) {
				t.Errorf("failures %q, want one saying %q", r.Failures, tc.want)
			}
		})
	}
}

func TestMemoryBound(t *testing.T) {
	// A Loop connection may hold MaxInput + MaxOutput; twice that for the
	// collector's headroom; plus 16 MiB.
	got := memoryBound("loop", shortLimits, 10<<20, 4)
	want := int64(10<<20 + 2*4*(128<<10+512<<10) + 16<<20)
	if got != want {
		t.Errorf("memoryBound(loop, 4 conns) = %d, want %d", got, want)
	}
	if s, l := perConn("server", shortLimits), perConn("loop", shortLimits); s <= 2*(4+maxPayload) || l <= s {
		t.Errorf("perConn: server %d, loop %d; want the Server's above two frames and the Loop's (640 KiB) above it", s, l)
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tsoak\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\nSigQ:\t0/1000\n"
	var ps procStats
	if err := parseStatus([]byte(status), &ps); err != nil {
		t.Fatal(err)
	}
	if want := (procStats{HWM: 20 << 20, RSS: 10 << 20, Threads: 7}); ps != want {
		t.Errorf("parseStatus = %+v, want %+v", ps, want)
	}
	if err := parseStatus([]byte("Name:\tsoak\n"), &ps); err == nil {
		t.Error("parseStatus without the fields: no error")
	}
	if runtime.GOOS == "linux" {
		ps, err := readProc(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if ps.FDs < 3 || ps.RSS <= 0 || ps.HWM < ps.RSS || ps.Threads < 1 {
			t.Errorf("readProc(self) = %+v, want stdio open, some memory, a thread", ps)
		}
	}
}

func TestParseMix(t *testing.T) {
	mix, err := parseMix(defaultMix)
	if err != nil {
		t.Fatal(err)
	}
	if len(mix) != len(kinds) {
		t.Errorf("the default mix %q has %d kinds, want all %d", defaultMix, len(mix), len(kinds))
	}
	for _, bad := range []string{"pipeline", "pipeline=x", "pipeline=-1", "lurker=3"} {
		if _, err := parseMix(bad); err == nil || !strings.Contains(err.Error(), strings.Split(bad, "=")[0]) {
			t.Errorf("parseMix(%q) = %v, want an error quoting it", bad, err)
		}
	}
}

// TestRequest: a reply is accepted only if it is the request's payload,
// and a wrong one is named by its first wrong byte.
func TestRequest(t *testing.T) {
	q := request{seq: 7, off: 100, n: 300}
	frame := q.appendFrame(nil)
	if len(frame) != 304 || frame[3] != 44 || frame[1] != 0 || frame[2] != 1 {
		t.Fatalf("frame header % x, want 00 00 01 2c", frame[:4])
	}
	if err := q.check(frame[4:]); err != nil {
		t.Fatal(err)
	}
	other := request{seq: 8, off: 100, n: 300}.appendFrame(nil)
	if err := q.check(other[4:]); err == nil || !strings.Contains(err.Error(), "byte 7") {
		t.Errorf("check(another request's payload) = %v, want byte 7 named", err)
	}
	if err := q.check(frame[4:303]); err == nil || !strings.Contains(err.Error(), "299 bytes") {
		t.Errorf("check(short payload) = %v, want the length named", err)
	}
}
