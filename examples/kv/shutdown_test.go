//go:build linux

package main

import (
	"testing"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// TestShutdownMidRequest: a request whose first bytes arrived before the
// graceful shutdown began and whose last bytes arrive after it is still
// answered (the Loop keeps a connection with unconsumed input open until
// it is idle or Shutdown's context ends), and the connection is closed
// once the reply is out; meanwhile idle connections are closed at once and
// no new one is accepted. A request that is never completed holds the
// shutdown up only until -shutdown-timeout, and run still returns nil.
func TestShutdownMidRequest(t *testing.T) {
	req := frame(request("get", "k"))
	t.Run("completed", func(t *testing.T) {
		srv := startKV(t, config{loops: 1})
		busy, idle := dial(t, srv.addr), dial(t, srv.addr)
		roundTrip(t, busy, frame(request("set", "k", "v")), frame(reply(0, "")))
		roundTrip(t, idle, frame(request("get", "k")), frame(reply(0, "v")))
		if _, err := busy.Write([]byte(req[:7])); err != nil {
			t.Fatal(err)
		}
		srv.waitInput(t) // the first 7 bytes are in the server's input buffer

		srv.stop()
		expectEOF(t, idle) // the shutdown has reached the loop
		if c, err := netcore.Dial("tcp", srv.addr); err == nil {
			c.Close()
			t.Errorf("a new connection was accepted during the shutdown")
		}
		roundTrip(t, busy, req[7:], frame(reply(0, "v")))
		expectEOF(t, busy)
		if err := srv.wait(t); err != nil {
			t.Errorf("run = %v, want nil", err)
		}
	})
	t.Run("never completed", func(t *testing.T) {
		const grace = 300 * time.Millisecond
		srv := startKV(t, config{loops: 1, grace: grace})
		c := dial(t, srv.addr)
		roundTrip(t, c, frame(request("get", "k")), frame(reply(2, "")))
		if _, err := c.Write([]byte(req[:7])); err != nil {
			t.Fatal(err)
		}
		srv.waitInput(t)
		start := time.Now()
		srv.stop()
		expectEOF(t, c)
		if d := time.Since(start); d < grace {
			t.Errorf("the connection with half a request was closed after %v, before -shutdown-timeout %v", d, grace)
		}
		if err := srv.wait(t); err != nil {
			t.Errorf("run = %v, want nil", err)
		}
	})
}
