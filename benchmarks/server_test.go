//go:build linux

package benchmarks_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/benchmarks"
	"golang.org/x/sys/unix"
)

// TestEcho starts every implementation in this process and checks that it
// echoes byte-exactly on several connections at once, with writes of random
// sizes (over TLS, verifying the server's certificate, for the TLS ones),
// and that Close stops it.
func TestEcho(t *testing.T) {
	for _, impl := range benchmarks.Impls {
		t.Run(impl.Name, func(t *testing.T) {
			srv, err := impl.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			var cfg *tls.Config
			if ts, ok := srv.(benchmarks.TLSServer); ok != impl.TLS {
				t.Fatalf("Impl.TLS is %v but the server is a TLSServer: %v", impl.TLS, ok)
			} else if ok {
				if cfg, err = benchmarks.ClientTLSConfig(ts.Certificate(), srv.Addr()); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := range 8 {
				wg.Go(func() {
					if err := checkEcho(srv.Addr(), uint64(i), cfg); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := srv.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := srv.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if c, err := net.DialTimeout("tcp4", srv.Addr(), timeout); err == nil {
				c.Close()
				t.Errorf("dial after Close succeeded")
			} else if !errors.Is(err, unix.ECONNREFUSED) {
				t.Errorf("dial after Close: %v, want ECONNREFUSED", err)
			}
		})
	}
}

// checkEcho sends 256 KiB of random bytes in random-sized writes while
// reading the echo, and compares; with cfg, over TLS 1.3.
func checkEcho(addr string, seed uint64, cfg *tls.Config) error {
	c, err := net.DialTimeout("tcp4", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if cfg != nil {
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %v", err)
		}
		if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
			return fmt.Errorf("TLS version %s, want TLS 1.3", tls.VersionName(v))
		}
		c = tc
	}
	rng := rand.New(rand.NewPCG(seed, 9))
	want := make([]byte, 256<<10)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	wrote := make(chan error, 1)
	go func() {
		for p := want; len(p) > 0; {
			n := min(len(p), 1+rng.IntN(20000))
			if _, err := c.Write(p[:n]); err != nil {
				wrote <- err
				return
			}
			p = p[n:]
		}
		wrote <- nil
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if err := <-wrote; err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}

// TestProcess runs every implementation as a server process, as the
// benchmarks do: it reports an address, counters that grow, its heap, and
// exits cleanly at the end of its stdin.
func TestProcess(t *testing.T) {
	for _, impl := range benchmarks.Impls {
		t.Run(impl.Name, func(t *testing.T) {
			p := startProcess(t, impl.Name)
			defer p.stop(t)
			first := p.stats(t)
			conns, err := openConns(p, 3)
			if err != nil {
				t.Fatalf("%v%s", err, p.log())
			}
			closeAll(conns)
			second := p.stats(t)
			if first.CPU <= 0 || second.CPU < first.CPU {
				t.Errorf("CPU %d then %d: want positive and not decreasing", first.CPU, second.CPU)
			}
			if second.RSS <= 0 || second.PeakRSS < second.RSS || second.PeakRSS < first.PeakRSS {
				t.Errorf("RSS %d, peak %d then %d: want positive, peak at least RSS and not decreasing", second.RSS, first.PeakRSS, second.PeakRSS)
			}
			if first.Allocs <= 0 || second.Allocs < first.Allocs {
				t.Errorf("allocations %d then %d: want positive and not decreasing", first.Allocs, second.Allocs)
			}
			if heap := p.heap(t); heap <= 0 {
				t.Errorf("heap %d bytes, want positive", heap)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	if _, err := benchmarks.Lookup("net"); err != nil {
		t.Errorf("Lookup(net): %v", err)
	}
	_, err := benchmarks.Lookup("nope")
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Lookup(nope) = %v, want an error quoting it", err)
	}
	if err := benchmarks.Serve("nope", "127.0.0.1:0", strings.NewReader(""), io.Discard); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Serve(nope) = %v, want an error quoting it", err)
	}
}

func TestParseStats(t *testing.T) {
	want := benchmarks.Stats{CPU: 123456789, RSS: 7 << 20, PeakRSS: 9 << 20, CtxSw: 4242, Allocs: 77}
	got, err := benchmarks.ParseStats(want.String())
	if err != nil || got != want {
		t.Errorf("ParseStats(%q) = %+v, %v, want %+v", want.String(), got, err, want)
	}
	for _, bad := range []string{"", "1 2", "1 2 3", "1 2 3 4", "a b c d e"} {
		if _, err := benchmarks.ParseStats(bad); err == nil || !strings.Contains(err.Error(), "\""+bad+"\"") {
			t.Errorf("ParseStats(%q) = %v, want an error quoting it", bad, err)
		}
	}
}
