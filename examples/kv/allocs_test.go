//go:build linux

package main

import (
	"io"
	"testing"
)

// TestLoopZeroAllocsPerRequest: in steady state a pipelined round trip of
// set (of an existing key), get, get of a missing key and del of a missing
// key allocates nothing, on the server (the FrameHandler, parsing, the
// store, the reply frames built in place, the loop) and on the client (a
// netcore Conn).
func TestLoopZeroAllocsPerRequest(t *testing.T) {
	srv := startKV(t, config{loops: 1})
	c := dial(t, srv.addr)
	roundTrip(t, c, frame(request("set", "key", "value")), frame(reply(0, "")))
	reqs, want := joined([]step{
		{frame(request("set", "key", "value")), frame(reply(0, ""))},
		{frame(request("get", "key")), frame(reply(0, "value"))},
		{frame(request("get", "missing")), frame(reply(2, ""))},
		{frame(request("del", "missing")), frame(reply(0, ""))},
	}, 1)
	req, got := []byte(reqs), make([]byte, len(want))
	exchange := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		exchange() // warm the loop's pools
	}
	if n := testing.AllocsPerRun(1000, exchange); n != 0 {
		t.Errorf("a pipelined round trip of 4 requests allocates %v times, want 0", n)
	}
	if string(got) != want {
		t.Errorf("last replies %q, want %q", got, want)
	}
}
