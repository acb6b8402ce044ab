//go:build !linux

package netcore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/netcore-dev/netcore/netcore"
)

// TestEntryPointsOffLinux: off Linux every entry point that needs the
// kernel fails with an error matching ErrLinuxOnly that names the input.
func TestEntryPointsOffLinux(t *testing.T) {
	ctx := context.Background()
	const addr = "127.0.0.1:8080"
	var lc netcore.ListenConfig
	var d netcore.Dialer
	srv := &netcore.Server{Addr: addr, Handler: netcore.HandlerFunc(nil)}
	for name, call := range map[string]func() error{
		"Listen":              func() error { _, err := netcore.Listen("tcp", addr); return err },
		"ListenConfig.Listen": func() error { _, err := lc.Listen(ctx, "tcp", addr); return err },
		"Dial":                func() error { _, err := netcore.Dial("tcp", addr); return err },
		"Dialer.Dial":         func() error { _, err := d.Dial("tcp", addr); return err },
		"Dialer.DialContext":  func() error { _, err := d.DialContext(ctx, "tcp", addr); return err },
		"Dialer.DialNetConn":  func() error { _, err := d.DialNetConn(ctx, "tcp", addr); return err },
		"Dialer.DialTLSContext": func() error {
			_, err := d.DialTLSContext(ctx, "tcp", addr, nil)
			return err
		},
		"Server.ListenAndServe": srv.ListenAndServe,
	} {
		err := call()
		if !errors.Is(err, netcore.ErrLinuxOnly) || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s = %v, want an error matching ErrLinuxOnly and naming %s", name, err, addr)
		}
	}
	if c, err := d.DialNetConn(ctx, "tcp", addr); c != nil {
		t.Errorf("DialNetConn = %#v, %v: want a nil net.Conn", c, err)
	}
}
