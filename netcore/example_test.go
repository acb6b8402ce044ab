package netcore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/netcore-dev/netcore/netcore"
)

// Resolve is the getaddrinfo step, on every platform: numeric hosts never
// touch DNS, an empty host is the wildcard (both families for "tcp"), and
// an address that does not fit the network is an error that quotes it.
func ExampleResolve() {
	ctx := context.Background()
	for _, q := range []struct{ network, address string }{
		{"tcp", "127.0.0.1:80"},
		{"tcp6", "[::1]:443"},
		{"tcp", ":8080"},
		{"tcp4", "[::1]:443"},
		{"tcp", "127.0.0.1:99999"},
	} {
		sas, err := netcore.Resolve(ctx, q.network, q.address)
		var re *netcore.ResolveError
		if errors.As(err, &re) {
			fmt.Printf("%s %q: error: %v\n", re.Network, re.Address, errors.Unwrap(re))
			continue
		}
		fmt.Println(sas)
	}
	// Output:
	// [127.0.0.1:80]
	// [[::1]:443]
	// [[::]:8080 0.0.0.0:8080]
	// tcp4 "[::1]:443": error: no tcp4 address for host "::1"
	// tcp "127.0.0.1:99999": error: port "99999" out of range 0-65535
}
