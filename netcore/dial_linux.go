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
// is resolved and its addresses tried in order until one connects.
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
		if d.LocalAddr.IsValid() && d.LocalAddr.Is4() != sa.Is4() {
			if first == nil {
				first = opError("dial", network, "", d.LocalAddr, sa, errors.New("source address family differs from the destination's"))
			}
			continue
		}
		actx, cancel := attemptContext(ctx, len(sas)-i)
		c, err := d.dialOne(actx, network, sa)
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

func (d *Dialer) dialOne(ctx context.Context, network string, sa Sockaddr) (*Conn, error) {
	fail := func(err error) (*Conn, error) {
		return nil, opError("dial", network, "", d.LocalAddr, sa, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	s, err := openSocket(sa.Family())
	if err != nil {
		return fail(err)
	}
	if err := d.setup(s); err != nil {
		closeRaw(s)
		return fail(err)
	}
	c := newConn(sa)
	if d.Blocking {
		if err := c.fd.initBlocking(s, sa.Family(), false); err != nil {
			return fail(err)
		}
		err = connectBlocking(ctx, &c.fd, sa)
	} else {
		err = connectPoller(ctx, &c.fd, s, sa)
	}
	if err != nil {
		c.fd.Close()
		return fail(err)
	}
	return c, nil
}

// setup applies the options that go before connect(2), and binds the
// source address.
func (d *Dialer) setup(s int) error {
	if !d.Nagle {
		if err := setInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return err
		}
	}
	if d.KeepAlive > 0 {
		if err := setKeepAlive(s, true, d.KeepAlive); err != nil {
			return err
		}
	}
	if d.Device != "" {
		if err := setDevice(s, d.Device); err != nil {
			return err
		}
	}
	if d.Control != nil {
		if err := d.Control(s); err != nil {
			return err
		}
	}
	if !d.LocalAddr.IsValid() {
		return nil
	}
	if d.LocalAddr.Port() == 0 {
		// Without this, bind(2) reserves an ephemeral port for this
		// source address alone, and a busy client runs out of ports long
		// before it runs out of 4-tuples.
		if err := setInt(s, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
			return err
		}
	}
	var raw [unix.SizeofSockaddrInet6]byte
	b, _ := d.LocalAddr.AppendBinary(raw[:0])
	return os.NewSyscallError("bind", sys.Bind(s, b))
}

// connectPoller runs the non-blocking connect algorithm on s: connect(2);
// on EINPROGRESS wait for writability, read SO_ERROR, and confirm with
// getpeername(2), since a wake-up does not prove the connection is made.
// s is handed to the poller (fd) after connect(2), which epoll does not
// mind: registering reports the current readiness. On loopback the
// connection is usually made by then, and the first check finds it without
// any waiting machinery. Cancelling ctx wakes the wait through a write
// deadline in the past.
func connectPoller(ctx context.Context, fd *netFD, s int, sa Sockaddr) error {
	var raw [unix.SizeofSockaddrInet6]byte
	b, _ := sa.AppendBinary(raw[:0])
	var err error
	for {
		err = sys.Connect(s, b)
		if classify(err, false) != retry {
			break
		}
		// EINTR: the connect goes on in the kernel; the next call says
		// EALREADY or EISCONN.
	}
	if err != nil && err != unix.EISCONN && classify(err, false) != wait {
		closeRaw(s)
		return os.NewSyscallError("connect", err)
	}
	if ierr := fd.initPoller(s, sa.Family()); ierr != nil {
		return ierr
	}
	if err == nil || err == unix.EISCONN {
		return nil
	}
	// Nobody else has the Conn yet, so s cannot be closed under us.
	if done, err := connectResult(s); done {
		return err
	}
	if ctx.Done() != nil {
		// The context's end (its deadline too) wakes the wait by setting
		// a write deadline in the past. If that raced with success, the
		// deadline is cleared again once the callback has surely finished.
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			fd.f.SetWriteDeadline(aLongTimeAgo)
			close(fired)
		})
		defer func() {
			if !stop() {
				<-fired
				fd.f.SetWriteDeadline(time.Time{})
			}
		}()
	}
	var cerr error
	err = fd.rc.Write(func(s uintptr) bool {
		var done bool
		done, cerr = connectResult(int(s))
		return done
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fd.rawErr(err)
	}
	return cerr
}

// aLongTimeAgo is a deadline that has passed: setting it wakes a wait.
var aLongTimeAgo = time.Unix(1, 0)
