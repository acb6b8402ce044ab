package netcore

import (
	"context"
	"crypto/tls"
	"net"
)

// DialNetConn connects like DialContext and returns the connection as a
// net.Conn, the signature that http.Transport.DialContext, gRPC-style
// dialers and proxies expect:
//
//	tr := &http.Transport{DialContext: (&netcore.Dialer{}).DialNetConn}
//
// On error the net.Conn is nil itself (not a net.Conn holding a nil *Conn),
// so a check c != nil means what it says. The connection is a *Conn; use
// DialContext to get one typed as such.
func (d *Dialer) DialNetConn(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialTLSContext connects like DialContext and runs a TLS client handshake
// over the connection, as tls.Dialer does over Go's net: config (nil means
// the zero tls.Config) is cloned, and its ServerName, if empty, is taken
// from the host of address. d.Timeout and ctx bound the dial and the
// handshake together. On error the connection is closed. AsConn finds the
// *Conn beneath the returned *tls.Conn, for socket options.
func (d *Dialer) DialTLSContext(ctx context.Context, network, address string, config *tls.Config) (*tls.Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	if config == nil {
		config = &tls.Config{}
	} else {
		config = config.Clone()
	}
	if config.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		config.ServerName = host
	}
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, config)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, &net.OpError{Op: "tls-handshake", Net: network, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return tc, nil
}
