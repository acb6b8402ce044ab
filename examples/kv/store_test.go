//go:build linux

package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/netcore-dev/netcore/examples/kv/kvproto"
)

func args(s ...string) [][]byte {
	var b [][]byte
	for _, a := range s {
		b = append(b, []byte(a))
	}
	return b
}

func TestExec(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		cmds [][]string
		want []string // one reply payload per command
	}{
		{"set get", [][]string{{"set", "k", "v"}, {"get", "k"}}, []string{reply(0, ""), reply(0, "v")}},
		{"get missing", [][]string{{"get", "nope"}}, []string{reply(2, "")}},
		{"del", [][]string{{"set", "k", "v"}, {"del", "k"}, {"get", "k"}, {"del", "k"}},
			[]string{reply(0, ""), reply(0, ""), reply(2, ""), reply(0, "")}},
		{"overwrite longer then shorter", [][]string{{"set", "k", "a"}, {"set", "k", long}, {"get", "k"}, {"set", "k", "b"}, {"get", "k"}},
			[]string{reply(0, ""), reply(0, ""), reply(0, long), reply(0, ""), reply(0, "b")}},
		{"empty key and value", [][]string{{"set", "", ""}, {"get", ""}}, []string{reply(0, ""), reply(0, "")}},
		{"binary", [][]string{{"set", "\x00\xff", "\r\n"}, {"get", "\x00\xff"}}, []string{reply(0, ""), reply(0, "\r\n")}},
		{"case of the command", [][]string{{"SET", "k", "v"}, {"Get", "k"}, {"dEL", "k"}, {"GET", "k"}},
			[]string{reply(0, ""), reply(0, "v"), reply(0, ""), reply(2, "")}},
		{"no strings", [][]string{{}}, []string{reply(1, "empty request: no command")}},
		{"unknown", [][]string{{"incr", "k"}}, []string{reply(1, `unknown command "incr": want get, set or del`)}},
		{"unknown binary", [][]string{{"g\x00t\xff"}}, []string{reply(1, `unknown command "g\x00t\xff": want get, set or del`)}},
		{"unknown long", [][]string{{strings.Repeat("z", 100)}},
			[]string{reply(1, `unknown command "`+strings.Repeat("z", 64)+`"...: want get, set or del`)}},
		{"get arity", [][]string{{"get"}, {"get", "a", "b"}}, []string{
			reply(1, `"get" takes 2 strings (get key), got 1`), reply(1, `"get" takes 2 strings (get key), got 3`)}},
		{"set arity", [][]string{{"set", "k"}}, []string{reply(1, `"set" takes 3 strings (set key value), got 2`)}},
		{"del arity", [][]string{{"DEL", "a", "b", "c"}}, []string{reply(1, `"DEL" takes 2 strings (del key), got 4`)}},
		{"refused set changes nothing", [][]string{{"set", "k", "v"}, {"set", "k", "w", "x"}, {"get", "k"}},
			[]string{reply(0, ""), reply(1, `"set" takes 3 strings (set key value), got 4`), reply(0, "v")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			for i, cmd := range tt.cmds {
				var w appender
				if err := s.Exec(&w, args(cmd...)); err != nil {
					t.Fatalf("Exec(%q) = %v", cmd, err)
				}
				if string(w.b) != tt.want[i] {
					t.Errorf("Exec(%q) wrote %q, want %q", cmd, w.b, tt.want[i])
				}
			}
		})
	}
}

// failWriter fails every Write, as a LoopConn over its output limit does.
type failWriter struct{}

var errFull = errors.New("output full")

func (failWriter) Write(p []byte) (int, error) { return 0, errFull }

// TestExecWriteError: Exec returns the writer's error for every kind of
// reply, and a set still takes effect.
func TestExecWriteError(t *testing.T) {
	s := NewStore()
	for _, cmd := range [][]string{{"set", "k", "v"}, {"get", "k"}, {"get", "missing"}, {"del", "x"}, {"what"}} {
		if err := s.Exec(failWriter{}, args(cmd...)); !errors.Is(err, errFull) {
			t.Errorf("Exec(%q) on a failing writer = %v, want its error", cmd, err)
		}
	}
	var w appender
	s.Exec(&w, args("get", "k"))
	if string(w.b) != reply(0, "v") {
		t.Errorf("get after a set whose reply failed: %q, want the value", w.b)
	}
}

// TestExecConcurrent: sets and gets of the same keys from many goroutines
// (as from several event loops) are race-free (under -race) and every get
// sees a whole value that was set, never a mix of two.
func TestExecConcurrent(t *testing.T) {
	s := NewStore()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			var w appender
			for i := range 500 {
				key := fmt.Sprint("k", i%7)
				val := strings.Repeat(string(rune('a'+g)), 1+(i*g)%50)
				w.b = w.b[:0]
				if g%2 == 0 {
					s.Exec(&w, args("set", key, val))
					continue
				}
				s.Exec(&w, args("get", key))
				if string(w.b) == reply(2, "") {
					continue
				}
				v := strings.TrimPrefix(string(w.b), reply(0, ""))
				if v == "" || strings.Trim(v, v[:1]) != "" {
					errs <- fmt.Errorf("get %s = %q: not one value that was set", key, w.b)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestExecAllocs: in steady state a request costs no allocation from its
// payload to its reply: parsing into a reused slice, then get, set of an
// existing key, del of a missing key.
func TestExecAllocs(t *testing.T) {
	s := NewStore()
	w := &appender{b: make([]byte, 0, 256)}
	s.Exec(w, args("set", "key", "value1"))
	reqs := [][]byte{
		kvproto.AppendRequest(nil, args("set", "key", "value2")...),
		kvproto.AppendRequest(nil, args("get", "key")...),
		kvproto.AppendRequest(nil, args("get", "missing")...),
		kvproto.AppendRequest(nil, args("del", "missing")...),
	}
	want := reply(0, "") + reply(0, "value2") + reply(2, "") + reply(0, "")
	strs := make([][]byte, 0, 4)
	n := testing.AllocsPerRun(1000, func() {
		w.b = w.b[:0]
		for _, req := range reqs {
			var err error
			if strs, err = kvproto.ParseRequest(strs[:0], req); err != nil {
				t.Fatal(err)
			}
			if err := s.Exec(w, strs); err != nil {
				t.Fatal(err)
			}
		}
	})
	if n != 0 {
		t.Errorf("set of an existing key, get, get and del of a missing key allocate %v times in all, want 0", n)
	}
	if string(w.b) != want {
		t.Errorf("replies %q, want %q", w.b, want)
	}
}
