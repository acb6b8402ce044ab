//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netcore-dev/netcore/examples/kv/kvproto"
	"github.com/netcore-dev/netcore/netcore"
)

const testTimeout = 10 * time.Second

// frame is the test's own encoding of one frame: a 4-byte little-endian
// length, then payload.
func frame(payload string) string {
	return string(binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))) + payload
}

// request is the test's own encoding of a request payload.
func request(args ...string) string {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(args)))
	for _, a := range args {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(a)))
		b = append(b, a...)
	}
	return string(b)
}

// fakeServer listens on a free loopback port with Go's net; for its one
// connection it reads exactly want (or reports what it got instead), then
// writes answer and closes. Its verdict arrives on the returned channel.
func fakeServer(t *testing.T, want, answer string) (string, chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testTimeout))
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil {
			done <- err
			return
		}
		if string(got) != want {
			done <- errors.New("the server received " + strings.ToValidUTF8(string(got), "?") + ", want the test's encoding")
			return
		}
		_, err = c.Write([]byte(answer))
		done <- err
	}()
	return l.Addr().String(), done
}

func waitServer(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("fake server: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the fake server did not finish")
	}
}

// TestPipeline: the commands go out as the test's own encoding of their
// request frames, back to back, and every reply is printed in order as
// the book's client prints it.
func TestPipeline(t *testing.T) {
	want := frame(request("set", "k", "v")) + frame(request("get", "k")) + frame(request("del", "k")) +
		frame(request("get", "k")) + frame(request("bogus"))
	answer := frame("\x00\x00\x00\x00") + frame("\x00\x00\x00\x00v") + frame("\x00\x00\x00\x00") +
		frame("\x02\x00\x00\x00") + frame("\x01\x00\x00\x00unknown command")
	addr, done := fakeServer(t, want, answer)
	var out bytes.Buffer
	cmds := split(strings.Fields("set k v , get k , del k , get k , bogus"), ",")
	if err := run(addr, kvproto.DefaultMaxMsg, testTimeout, cmds, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	waitServer(t, done)
	wantOut := "server says: [0] \nserver says: [0] v\nserver says: [0] \nserver says: [2] \nserver says: [1] unknown command\n"
	if out.String() != wantOut {
		t.Errorf("printed %q, want %q", out.String(), wantOut)
	}
}

// TestErrors: a reply missing, cut short or malformed, and a request too
// large to send, each end the exchange with an error naming the reply or
// the command.
func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		answer  string
		wantErr string
	}{
		{"connection closed before the second reply", frame("\x00\x00\x00\x00"), "reply 2 of 2: EOF"},
		{"second reply cut short", frame("\x00\x00\x00\x00") + frame("\x00\x00\x00\x00abc")[:6], "reply 2 of 2: unexpected EOF"},
		{"reply shorter than a status", frame("\x00\x00"), "reply 1 of 2: kvproto: a 2-byte reply, too short for the 4-byte status"},
		{"reply over the maximum", string(binary.LittleEndian.AppendUint32(nil, 5000)), "reply 1 of 2: netcore: frame length 5000 exceeds the limit of 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, done := fakeServer(t, frame(request("get", "a"))+frame(request("get", "b")), tt.answer)
			var out bytes.Buffer
			err := run(addr, 4096, testTimeout, [][]string{{"get", "a"}, {"get", "b"}}, &out)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("run = %v, want %q", err, tt.wantErr)
			}
			waitServer(t, done)
		})
	}

	codec, _ := kvproto.NewCodec(4096)
	_, err := encode(codec, [][]string{{"get", "k"}, {"set", "k", strings.Repeat("v", 4096)}})
	if !errors.Is(err, netcore.ErrFrameTooLarge) || !strings.HasPrefix(err.Error(), `command 2 (["set" "k" "vvvvvvvvvvvvvvvvvvvvvvvvvvvvv`) {
		t.Errorf("encode of a 4096-byte value with a 4096-byte maximum = %v, want a FrameTooLargeError naming command 2", err)
	}
	if err := run("127.0.0.1:1", 4096, testTimeout, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("run with no command = %v, want an error saying so", err)
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		args string
		want [][]string
	}{
		{"one", "get k", [][]string{{"get", "k"}}},
		{"three", "set k v , get k , del k", [][]string{{"set", "k", "v"}, {"get", "k"}, {"del", "k"}}},
		{"stray separators", ", get k , , del k ,", [][]string{{"get", "k"}, {"del", "k"}}},
		{"commas inside arguments are data", "set k a,b", [][]string{{"set", "k", "a,b"}}},
		{"none", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, split(strings.Fields(tt.args), ",")); diff != "" {
				t.Errorf("split(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}
