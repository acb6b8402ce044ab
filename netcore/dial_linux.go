package netcore

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// Dial connects to address on network ("tcp", "tcp4", "tcp6"). A host name
// is resolved and its addresses tried in order until one connects. Network
// "unix" connects to a Unix stream socket: address is a file system path or
// "@name" in the Linux abstract namespace.
func Dial(network, address string) (*Conn, error) {
	var d Dialer
	return d.DialContext(context.Background(), network, address)
}

// Dial connects like the package's Dial, with d's options.
func (d *Dialer) Dial(network, address string) (*Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects to address on network. Cancelling ctx, or its
// deadline or d.Timeout passing, aborts the dial with an error that matches
// ctx's error (context.Canceled or context.DeadlineExceeded). The
// addresses of a name are tried in the resolver's order: the getaddrinfo
// loop. The error is that of the first address.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (*Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	if network == "unix" && address == "" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.AddrError{Err: "missing address"}}
	}
	var one [1]Sockaddr
	sas := one[:]
	if sa, ok := resolveNumeric(network, address); ok {
		one[0] = sa
	} else {
		var err error
		if sas, err = Resolve(ctx, network, address); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
	}
	return d.dialSerial(ctx, network, sas)
}

// dialSerial tries each address in turn until one connects; the error is
// that of the first.
func (d *Dialer) dialSerial(ctx context.Context, network string, sas []Sockaddr) (*Conn, error) {
	var first error
	for i, sa := range sas {
		if d.LocalAddr.IsValid() && d.LocalAddr.Family() != sa.Family() {
			if first == nil {
				first = opError("dial", network, d.LocalAddr, sa, errors.New("source address family differs from the destination's"))
			}
			continue
		}
		actx, cancel := attemptContext(ctx, len(sas)-i)
		c, err := d.dialOne(actx, network, sa)
		// A socket that connected to itself (see dialOne) was closed;
		// the next attempt gets another ephemeral port. Go's net
		// retries twice too.
		for retries := 0; errors.Is(err, errSelfConnect) && retries < 2; retries++ {
			c, err = d.dialOne(actx, network, sa)
		}
		cancel()
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// attemptContext gives one of n remaining addresses its share of the time
// left, as Go's net does, but never less than two seconds (or all that is
// left, if less).
func attemptContext(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return ctx, func() {}
	}
	left := time.Until(dl)
	share := left / time.Duration(n)
	if share < 2*time.Second {
		share = min(2*time.Second, left)
	}
	return context.WithTimeout(ctx, share)
}

func (d *Dialer) dialOne(ctx context.Context, network string, sa Sockaddr) (_ *Conn, err error) {
	if err := ctx.Err(); err != nil {
		return nil, opError("dial", network, d.LocalAddr, sa, err)
	}
	fd, err := openSocket(sa, d.Blocking)
	if err != nil {
		return nil, opError("dial", network, d.LocalAddr, sa, err)
	}
	defer func() {
		if err != nil {
			fd.close()
			err = opError("dial", network, d.LocalAddr, sa, err)
		}
	}()
	t := transportOf(sa)
	if err := d.setup(fd.private(), t, sa); err != nil {
		return nil, err
	}
	if err := connect(ctx, fd, sa); err != nil {
		return nil, err
	}
	// The local address now, as Go's net does: errors name it, and it
	// outlives the socket.
	local, err := sockname(fd.private(), false)
	if err != nil {
		return nil, err
	}
	if sa.Addr().IsUnspecified() {
		// Connecting to a wildcard address reaches this host; the peer
		// is what the kernel made of it.
		if sa, err = sockname(fd.private(), true); err != nil {
			return nil, err
		}
	}
	if t.tcp && (!d.LocalAddr.IsValid() || d.LocalAddr.Port() == 0) {
		// Dialing a free port (of a wildcard address too, compared once resolved) of the ephemeral range on this host can
		// pick that very port as the source: TCP's simultaneous open
		// then connects the socket to itself, and it holds the port a
		// server wants. With a port of the caller's choosing, that is
		// what was asked for.
		if local.Unmap().AddrPort() == sa.Unmap().AddrPort() {
			return nil, errSelfConnect
		}
	}
	c := newConn(fd, network, sa)
	c.laddr = local
	return c, nil
}

// errSelfConnect: the socket connected to itself (and was closed).
var errSelfConnect = errors.New("the connection reached its own socket: nothing listens on that port")

// setup applies the options that go before connect(2), and binds the
// source address.
func (d *Dialer) setup(s int, t transport, sa Sockaddr) error {
	if err := t.connOptions(s, d.Nagle, d.KeepAlive); err != nil {
		return err
	}
	if err := t.ipOptions(s, d.Device, false); err != nil {
		return err
	}
	if err := runControl(d.Control, s, sa, sa.String()); err != nil {
		return err
	}
	if !d.LocalAddr.IsValid() {
		return nil
	}
	if t.tcp && d.LocalAddr.Port() == 0 {
		// Without this, bind(2) reserves an ephemeral port for this
		// source address alone, and a busy client runs out of ports long
		// before it runs out of 4-tuples.
		if err := setInt(s, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
			return err
		}
	}
	var raw sockaddrBuf
	b, _ := d.LocalAddr.AppendBinary(raw[:0])
	return os.NewSyscallError("bind", sys.Bind(s, b))
}
