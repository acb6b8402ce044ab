package netcore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netcore-dev/netcore/netcore"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		network, address string
		want             []string
	}{
		{"tcp", "127.0.0.1:80", []string{"127.0.0.1:80"}},
		{"tcp4", "127.0.0.1:80", []string{"127.0.0.1:80"}},
		{"tcp", "[::1]:443", []string{"[::1]:443"}},
		{"tcp6", "[fe80::1%3]:1", []string{"[fe80::1%3]:1"}},
		{"tcp4", "[::ffff:10.0.0.1]:5", []string{"10.0.0.1:5"}},
		{"tcp", "[::ffff:10.0.0.1]:5", []string{"[::ffff:10.0.0.1]:5"}},
		{"tcp", ":8080", []string{"[::]:8080", "0.0.0.0:8080"}},
		{"tcp4", ":0", []string{"0.0.0.0:0"}},
		{"tcp6", ":0", []string{"[::]:0"}},
		{"tcp4", "127.0.0.1:http", []string{"127.0.0.1:80"}},
		{"tcp4", "localhost:1234", []string{"127.0.0.1:1234"}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range tests {
		t.Run(tt.network+"/"+tt.address, func(t *testing.T) {
			sas, err := netcore.Resolve(ctx, tt.network, tt.address)
			if err != nil {
				if strings.Contains(tt.address, "http") && strings.Contains(err.Error(), "service") {
					t.Skipf("no services database here: %v", err)
				}
				t.Fatalf("Resolve(%q, %q) error: %v", tt.network, tt.address, err)
			}
			var got []string
			for _, sa := range sas {
				got = append(got, sa.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Resolve(%q, %q) (-want +got):\n%s", tt.network, tt.address, diff)
			}
		})
	}
}

func TestResolveLocalhostBothFamilies(t *testing.T) {
	sas, err := netcore.Resolve(context.Background(), "tcp", "localhost:7")
	if err != nil {
		t.Fatalf(`Resolve("tcp", "localhost:7") error: %v`, err)
	}
	found4 := false
	for _, sa := range sas {
		if sa.Port() != 7 || !sa.Addr().IsLoopback() {
			t.Errorf("localhost resolved to %v, not a loopback address with port 7", sa)
		}
		found4 = found4 || sa.Is4()
	}
	if !found4 {
		t.Errorf("localhost resolved to %v, no 127.0.0.1", sas)
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct{ network, address string }{
		{"udp", "127.0.0.1:80"},
		{"tcp", "127.0.0.1"},
		{"tcp", "127.0.0.1:65536"},
		{"tcp", "127.0.0.1:no-such-service-xyz"},
		{"unixgram", "/tmp/socket"}, {"unix", "/tmp/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		{"tcp6", "127.0.0.1:80"},
		{"tcp4", "[::1]:80"},
		{"tcp", "[fe80::1%no-such-if0]:80"},
		{"tcp", "no-such-host.invalid:80"},
	}
	for _, tt := range tests {
		t.Run(tt.network+"/"+tt.address, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sas, err := netcore.Resolve(ctx, tt.network, tt.address)
			if err == nil {
				t.Fatalf("Resolve(%q, %q) = %v, want an error", tt.network, tt.address, sas)
			}
			var re *netcore.ResolveError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), `"`+tt.address+`"`) {
				t.Errorf("Resolve(%q, %q) error %q is not a *ResolveError quoting the address", tt.network, tt.address, err)
			}
			if n := strings.Count(err.Error(), "netcore:"); n != 1 {
				t.Errorf("Resolve(%q, %q) error %q says \"netcore:\" %d times, want once", tt.network, tt.address, err, n)
			}
		})
	}
}

// TestResolveUnsupportedNetwork: a network netcore does not speak is the
// error, before the address is looked at ("unixgram" has no port to miss).
func TestResolveUnsupportedNetwork(t *testing.T) {
	for _, network := range []string{"unixgram", "unixpacket", "udp", "ip4", ""} {
		_, err := netcore.Resolve(context.Background(), network, "/run/x.sock")
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("network %q is not supported", network)) || strings.Contains(err.Error(), "missing port") {
			t.Errorf("Resolve(%q, a path) = %v, want the network named as unsupported", network, err)
		}
	}
}

// TestResolveEmptyPort: "host:" means port 0, as in Go's net.
func TestResolveEmptyPort(t *testing.T) {
	sas, err := netcore.Resolve(context.Background(), "tcp", "127.0.0.1:")
	if err != nil || len(sas) != 1 || sas[0] != netcore.MustParseSockaddr("127.0.0.1:0") {
		t.Errorf(`Resolve("tcp", "127.0.0.1:") = %v, %v, want [127.0.0.1:0]`, sas, err)
	}
}

func TestResolveCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := netcore.Resolve(ctx, "tcp", "some-name.invalid:80"); err == nil {
		t.Fatal("Resolve with a canceled context succeeded")
	}
	// A numeric host needs no lookup, so a canceled context does not matter.
	if _, err := netcore.Resolve(ctx, "tcp", "127.0.0.1:80"); err != nil {
		t.Fatalf("Resolve of a numeric host with a canceled context: %v", err)
	}
}
