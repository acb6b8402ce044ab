//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/netcore-dev/netcore/examples/kv/kvproto"
)

// decodeRequest is the test's own decoder of a request payload: a count,
// then that many strings each after its length (4-byte little-endian
// numbers), and nothing after; ok is false otherwise.
func decodeRequest(p []byte) (args []string, ok bool) {
	if len(p) < 4 {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(p)
	p = p[4:]
	if n > kvproto.MaxArgs {
		return nil, false
	}
	for range n {
		if len(p) < 4 {
			return nil, false
		}
		l := binary.LittleEndian.Uint32(p)
		p = p[4:]
		if uint64(l) > uint64(len(p)) {
			return nil, false
		}
		args = append(args, string(p[:l]))
		p = p[l:]
	}
	return args, len(p) == 0
}

// model is the test's reference key-value store: a plain map, with the
// book's semantics written out once more.
type model map[string]string

// do returns the reply payload to args, or "" for a request that must be
// refused with ERR (whose text the model does not predict).
func (m model) do(args []string) string {
	if len(args) == 0 {
		return ""
	}
	switch cmd := strings.ToLower(args[0]); {
	case cmd == "get" && len(args) == 2:
		v, ok := m[args[1]]
		if !ok {
			return reply(2, "")
		}
		return reply(0, v)
	case cmd == "set" && len(args) == 3:
		m[args[1]] = args[2]
		return reply(0, "")
	case cmd == "del" && len(args) == 2:
		delete(m, args[1])
		return reply(0, "")
	}
	return ""
}

// serveOne answers one request payload as the server's onFrame does, into
// w.
func serveOne(s *Store, w *appender, strs [][]byte, payload []byte) [][]byte {
	strs, err := kvproto.ParseRequest(strs[:0], payload)
	if err != nil {
		w.Write(errReply(err.Error()))
		return strs
	}
	s.Exec(w, strs)
	return strs
}

// FuzzServe runs a stream of request frames through the server's request
// path (ParseRequest, then Store.Exec, or the ERR reply to a bad payload)
// and through the test's own decoder and map model: it never panics, every
// request gets exactly one reply, which is the model's byte for byte
// whenever the request is a valid get, set or del, and an ERR reply of
// printable ASCII text, at most a few hundred bytes, otherwise.
func FuzzServe(f *testing.F) {
	stream := func(reqs ...string) []byte {
		var b []byte
		for _, r := range reqs {
			b = append(b, frame(r)...)
		}
		return b
	}
	f.Add(stream(request("set", "k", "v"), request("get", "k"), request("del", "k"), request("get", "k")))
	f.Add(stream(request("set", "k", strings.Repeat("a", 100)), request("set", "k", "b"), request("get", "k"),
		request("set", "k", strings.Repeat("c", 60)), request("get", "k")))
	f.Add(stream(request("GET"), request(), "", u32(3)+u32(1)+"x", request("nope", "x"), request("Set", "", "")))
	f.Add(stream(request("set", "k", "v") + "trailing"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, m := NewStore(), model{}
		var w appender
		var strs [][]byte
		for len(data) >= 4 {
			n := binary.LittleEndian.Uint32(data)
			if uint64(n) > uint64(len(data)-4) {
				break
			}
			payload := data[4 : 4+n]
			data = data[4+n:]

			w.b = w.b[:0]
			strs = serveOne(s, &w, strs, payload)
			args, ok := decodeRequest(payload)
			want := ""
			if ok {
				want = m.do(args)
			}
			if want != "" {
				if string(w.b) != want {
					t.Fatalf("request %q: reply %q, the model's %q", args, w.b, want)
				}
				continue
			}
			st, msg, err := kvproto.ParseReply(w.b)
			if err != nil || st != kvproto.ERR {
				t.Fatalf("request payload %q: reply %q, want ERR", payload, w.b)
			}
			if len(msg) == 0 || len(msg) > kvproto.MinMaxMsg-4 || bytes.ContainsFunc(msg, func(r rune) bool { return r < ' ' || r > '~' }) {
				t.Fatalf("request payload %q: ERR message %q, want some printable ASCII", payload, msg)
			}
		}
	})
}
