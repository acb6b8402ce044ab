//go:build linux

package main

import (
	"strings"
	"testing"
)

// BenchmarkRequest measures the server's work per request without I/O:
// ParseRequest over the payload, then Store.Exec writing the reply.
func BenchmarkRequest(b *testing.B) {
	value := strings.Repeat("v", 100)
	for _, bc := range []struct {
		name string
		req  string
	}{
		{"get", request("get", "key")},
		{"get-missing", request("get", "missing")},
		{"set", request("set", "key", value)},
		{"del-missing", request("del", "missing")},
		{"bad", request("incr", "key")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewStore()
			w := &appender{b: make([]byte, 0, 256)}
			s.Exec(w, args("set", "key", value))
			payload := []byte(bc.req)
			var strs [][]byte
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				w.b = w.b[:0]
				strs = serveOne(s, w, strs, payload)
			}
		})
	}
}
