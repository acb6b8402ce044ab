package netcore_test

import (
	"bytes"
	"context"
	"encoding/binary"
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

// A FrameReader serves a connection from its own goroutine. Here the
// connection is a reader that holds two frames and the start of a third,
// whose header claims 1000 bytes of which 3 arrive before the end of the
// stream. Ready says whether Next can return without reading: the moment
// to flush replies batched so far.
func ExampleFrameReader() {
	codec, err := netcore.NewFrameCodec(4, binary.LittleEndian, 4096)
	if err != nil {
		panic(err)
	}
	var stream []byte
	stream, _ = codec.Append(stream, []byte("hello"))
	stream, _ = codec.Append(stream, []byte("world"))
	stream = binary.LittleEndian.AppendUint32(stream, 1000)
	stream = append(stream, "abc"...)

	fr := netcore.NewFrameReader(bytes.NewReader(stream), codec)
	for {
		payload, err := fr.Next()
		if err != nil {
			fmt.Println(err) // io.EOF between frames, io.ErrUnexpectedEOF within one
			break
		}
		fmt.Printf("frame %q, next one buffered: %v\n", payload, fr.Ready())
	}
	// Output:
	// frame "hello", next one buffered: true
	// frame "world", next one buffered: false
	// unexpected EOF
}
