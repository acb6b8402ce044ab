//go:build linux

package main

import (
	"strings"
	"testing"
)

// BenchmarkServe measures the protocol core alone (parse, run, reply), per
// command, without I/O: what a request costs the server beyond its two
// system calls.
func BenchmarkServe(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   string
		cmds int
	}{
		{"GET", resp("GET", "key:__rand_int__"), 1},
		{"SET", resp("SET", "key:__rand_int__", "VXK"), 1},
		{"PING_INLINE", "PING\r\n", 1},
		{"pipeline=16", strings.Repeat(resp("GET", "key:__rand_int__"), 16), 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st := NewStore()
			st.Set([]byte("key:__rand_int__"), []byte("VXK"))
			sess := st.NewSession(0)
			in, out := []byte(bc.in), make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if n, _, _ := sess.Serve(in, out[:0]); n != len(in) {
					b.Fatalf("consumed %d of %d", n, len(in))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.cmds), "ns/cmd")
		})
	}
}
