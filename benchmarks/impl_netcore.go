//go:build linux

package benchmarks

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/netcore-dev/netcore/netcore"
)

// netcoreServer is netcore's Server in its default mode: like Go's net, a
// goroutine and a buffer per connection, parked on Go's runtime poller.
type netcoreServer struct {
	l      *netcore.Listener
	srv    *netcore.Server
	served chan error
}

// StartNetcore starts netcore's Server (goroutine per connection, default
// mode) on addr, with the same buffer per connection as the net server.
func StartNetcore(addr string) (Server, error) { return startNetcore(addr, nil) }

// StartNetcoreTLS is StartNetcore with Server.TLSConfig: each connection's
// goroutine runs the TLS handshake (bounded by the Server's default
// HandshakeTimeout) before the handler sees the *tls.Conn.
func StartNetcoreTLS(addr string) (Server, error) {
	cfg, cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s, err := startNetcore(addr, cfg)
	if err != nil {
		return nil, err
	}
	return &netcoreTLSServer{s, cert}, nil
}

// netcoreTLSServer is a netcoreServer that speaks TLS.
type netcoreTLSServer struct {
	*netcoreServer
	cert []byte
}

func (s *netcoreTLSServer) Certificate() []byte { return s.cert }

func startNetcore(addr string, cfg *tls.Config) (*netcoreServer, error) {
	l, err := netcore.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &netcoreServer{l: l, served: make(chan error, 1)}
	s.srv = &netcore.Server{TLSConfig: cfg, Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) {
		buf := make([]byte, netBufSize)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})}
	go func() { s.served <- s.srv.Serve(l) }()
	return s, nil
}

func (s *netcoreServer) Addr() string { return s.l.Addr().String() }

// Close closes the listener and every connection and waits for the
// handlers.
func (s *netcoreServer) Close() error { return s.srv.Close() }
