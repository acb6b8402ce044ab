//go:build linux

package netcore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialSerial checks the getaddrinfo loop: addresses are tried in
// order until one connects, and when none does the error is the first's.
func TestDialSerial(t *testing.T) {
	l, err := Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	closed, err := Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Sockaddr()
	closed.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d Dialer

	c, err := d.dialSerial(ctx, "tcp", []Sockaddr{refused, refused, l.Sockaddr()})
	if err != nil {
		t.Fatalf("dialSerial past two refused addresses: %v", err)
	}
	if c.RemoteSockaddr() != l.Sockaddr() {
		t.Errorf("connected to %v, want %v", c.RemoteSockaddr(), l.Sockaddr())
	}
	c.Close()

	v6 := MustParseSockaddr("[::1]:1")
	_, err = d.dialSerial(ctx, "tcp", []Sockaddr{refused, v6})
	if !errors.Is(err, unix.ECONNREFUSED) || !strings.Contains(err.Error(), refused.String()) {
		t.Errorf("dialSerial with nothing listening = %v, want the first address's ECONNREFUSED", err)
	}

	// A source address of the other family skips an address.
	d.LocalAddr = MustParseSockaddr("[::1]:0")
	if _, err := d.dialSerial(ctx, "tcp", []Sockaddr{l.Sockaddr()}); err == nil || !strings.Contains(err.Error(), "family") {
		t.Errorf("dialSerial from an IPv6 source to an IPv4 address = %v, want a family error", err)
	}
}
