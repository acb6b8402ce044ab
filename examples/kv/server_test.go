//go:build linux

package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/netcore-dev/netcore/examples/kv/kvproto"
)

// step is a request frame and the reply frame it must get, both in the
// test's own encoding.
type step struct{ req, reply string }

// conversation is a run of requests covering every command and reply
// kind, bad requests included, whose replies do not depend on what ran
// before it (it ends with every key it sets deleted).
func conversation() []step {
	long := strings.Repeat("0123456789", 200)
	return []step{
		{frame(request("set", "k", "v")), frame(reply(0, ""))},
		{frame(request("get", "k")), frame(reply(0, "v"))},
		{frame(request("get", "missing")), frame(reply(2, ""))},
		{frame(request("SET", "k", long)), frame(reply(0, ""))},
		{frame(request("get", "k")), frame(reply(0, long))},
		{frame(request("set", "\x00\xff", "")), frame(reply(0, ""))},
		{frame(request("get", "\x00\xff")), frame(reply(0, ""))},
		{frame(request("ping")), frame(reply(1, `unknown command "ping": want get, set or del`))},
		{frame(request("get", "k", "extra")), frame(reply(1, `"get" takes 2 strings (get key), got 3`))},
		{frame(""), frame(reply(1, "bad request: a 0-byte payload, too short for the 4-byte string count"))},
		{frame(u32(2) + u32(3) + "get"), frame(reply(1, "bad request: 2 strings declared, but the 7 bytes after the count hold at most 1"))},
		{frame(request("get", "k") + "!"), frame(reply(1, "bad request: 1 bytes after the last of 2 strings"))},
		{frame(request("del", "k")), frame(reply(0, ""))},
		{frame(request("del", "\x00\xff")), frame(reply(0, ""))},
		{frame(request("get", "k")), frame(reply(2, ""))},
		{frame(request()), frame(reply(1, "empty request: no command"))},
	}
}

// joined returns the requests and the replies of steps, each run repeated
// times, concatenated.
func joined(steps []step, times int) (reqs, replies string) {
	var rq, rp strings.Builder
	for range times {
		for _, s := range steps {
			rq.WriteString(s.req)
			rp.WriteString(s.reply)
		}
	}
	return rq.String(), rp.String()
}

// TestPipeline: many requests in one write are all answered, in order,
// byte for byte; so are the same requests arriving one byte at a time
// (each in its own write(2)), and the connection still serves afterwards.
func TestPipeline(t *testing.T) {
	reqs, want := joined(conversation(), 20)
	forEachTarget(t, config{}, func(t *testing.T, addr string) {
		for _, piece := range []int{len(reqs), 1} {
			t.Run(fmt.Sprintf("pieces-of-%d", piece), func(t *testing.T) {
				c := dial(t, addr)
				werr := make(chan error, 1)
				go func() {
					for rest := reqs; len(rest) > 0; {
						n := min(piece, len(rest))
						if _, err := c.Write([]byte(rest[:n])); err != nil {
							werr <- err
							return
						}
						rest = rest[n:]
					}
					werr <- nil
				}()
				got := readN(t, c, len(want))
				if err := <-werr; err != nil {
					t.Fatalf("writing the requests: %v", err)
				}
				if string(got) != want {
					i := 0
					for i < len(got) && got[i] == want[i] {
						i++
					}
					t.Fatalf("%d requests: replies differ from byte %d: got %.80q, want %.80q",
						20*len(conversation()), i, got[i:], want[i:])
				}
				roundTrip(t, c, frame(request("get", "k")), frame(reply(2, "")))
			})
		}
	})
}

// TestBadRequests: each malformed payload is answered ERR, quoting what
// was wrong, and the same connection goes on serving.
func TestBadRequests(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		msg     string
	}{
		{"empty payload", "", "bad request: a 0-byte payload, too short for the 4-byte string count"},
		{"3-byte payload", "\x01\x00\x00", "bad request: a 3-byte payload, too short for the 4-byte string count"},
		{"count over MaxArgs", u32(kvproto.MaxArgs + 1), "bad request: 200001 strings, over the limit of 200000"},
		{"MaxArgs+1 strings present", u32(kvproto.MaxArgs+1) + strings.Repeat(u32(0), kvproto.MaxArgs+1),
			"bad request: 200001 strings, over the limit of 200000"},
		{"count over the payload", u32(3) + u32(3) + "get", "bad request: 3 strings declared, but the 7 bytes after the count hold at most 1"},
		{"length over the payload", u32(2) + u32(3) + "get" + u32(1000) + "key",
			"bad request: string 2 of 2 claims 1000 bytes, but 3 remain"},
		{"length cut short", u32(2) + u32(3) + "get" + "\x01\x00", "bad request: string 2 of 2: 2 bytes left, too few for its 4-byte length"},
		{"trailing bytes", request("get", "k") + "xyz", "bad request: 3 bytes after the last of 2 strings"},
		{"no strings", request(), "empty request: no command"},
		{"unknown command", request("incr", "k"), `unknown command "incr": want get, set or del`},
		{"unknown binary command", request("\x00\xfe\n"), `unknown command "\x00\xfe\n": want get, set or del`},
		{"long unknown command", request(strings.Repeat("q", 5000)), `unknown command "` + strings.Repeat("q", 64) + `"...: want get, set or del`},
		{"set without value", request("set", "k"), `"set" takes 3 strings (set key value), got 2`},
		{"many strings", request(strings.Split(strings.Repeat("del,", 1000), ",")...), `"del" takes 2 strings (del key), got 1001`},
	}
	forEachTarget(t, config{}, func(t *testing.T, addr string) {
		c := dial(t, addr)
		roundTrip(t, c, frame(request("set", "k", "kept")), frame(reply(0, "")))
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				roundTrip(t, c, frame(tt.payload), frame(reply(1, tt.msg)))
				roundTrip(t, c, frame(request("get", "k")), frame(reply(0, "kept")))
			})
		}
	})
}

// TestOversize: a frame whose length is over -max-msg is answered ERR
// naming the length and the limit as soon as its header arrives, then its
// connection is closed; the other connections, open before or after, are
// served as before. A request of exactly -max-msg bytes is served, and so
// is the reply to get of the largest value such a request can set.
func TestOversize(t *testing.T) {
	const maxMsg = kvproto.MinMaxMsg
	// 4+4+3+4+1+4 bytes of count, lengths, "set" and "k": the value takes
	// the rest of the largest payload.
	largest := strings.Repeat("L", maxMsg-20)
	tests := []struct {
		name   string
		header uint32
	}{
		{"max+1", maxMsg + 1},
		{"2^31", 1 << 31},
		{"2^32-1", 1<<32 - 1},
	}
	forEachTarget(t, config{maxMsg: maxMsg}, func(t *testing.T, addr string) {
		other := dial(t, addr)
		roundTrip(t, other, frame(request("set", "k", largest)), frame(reply(0, "")))
		if n := len(request("set", "k", largest)); n != maxMsg {
			t.Fatalf("the largest set request is %d bytes, want %d", n, maxMsg)
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := dial(t, addr)
				roundTrip(t, c, frame(request("get", "k")), frame(reply(0, largest)))
				want := frame(reply(1, fmt.Sprintf("request of %d bytes is over the limit of %d (-max-msg); closing the connection", tt.header, maxMsg)))
				roundTrip(t, c, u32(tt.header), want)
				expectEOF(t, c)

				roundTrip(t, other, frame(request("get", "k")), frame(reply(0, largest)))
				roundTrip(t, dial(t, addr), frame(request("get", "missing")), frame(reply(2, "")))
			})
		}
	})
}

// TestLargeValues: with the default -max-msg, a value of 1 MiB is stored
// and returned whole, and a pipeline of 64 gets of it, far over the
// Loop's output high watermark, is answered completely to a client that
// reads every reply; then a value as large as a request can carry.
func TestLargeValues(t *testing.T) {
	mib := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	forEachTarget(t, config{}, func(t *testing.T, addr string) {
		c := dial(t, addr)
		roundTrip(t, c, frame(request("set", "big", string(mib))), frame(reply(0, "")))
		reqs, want := joined([]step{{frame(request("get", "big")), frame(reply(0, string(mib)))}}, 64)
		roundTrip(t, c, reqs, want)

		largest := strings.Repeat("x", kvproto.DefaultMaxMsg-22) // count, two lengths, "set", "big", a length
		roundTrip(t, c, frame(request("set", "big", largest)), frame(reply(0, "")))
		roundTrip(t, c, frame(request("get", "big")), frame(reply(0, largest)))
	})
}
