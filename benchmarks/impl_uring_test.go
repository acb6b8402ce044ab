//go:build linux

package benchmarks

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUringUserData(t *testing.T) {
	for _, c := range []struct {
		kind uint8
		seq  uint32
		fd   int
	}{{udAccept, 0, 3}, {udRecv, 1, 1 << 20}, {udSend, 0xffffff, 65535}, {udClose, 0x1000001, 7}, {udWake, 5, 0}} {
		kind, seq, fd := splitUserData(userData(c.kind, c.seq, c.fd))
		if kind != c.kind || seq != c.seq&0xffffff || fd != c.fd {
			t.Errorf("userData(%d, %#x, %d) comes back as %d, %#x, %d", c.kind, c.seq, c.fd, kind, seq, fd)
		}
	}
}

// A client that writes far more than the server may queue before reading
// anything gets every byte back, in order: the server pauses the
// connection's receive while its output is behind, then resumes.
func TestUringSlowReader(t *testing.T) {
	defer func(old int) { uringMaxQueue = old }(uringMaxQueue)
	uringMaxQueue = 256 << 10
	srv, err := StartUring("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const size = 8 << 20
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Go(func() {
			// A small receive buffer, set before connecting (the window
			// scale is agreed in the handshake): the server's sends wait.
			d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10) })
			}}
			c, err := d.Dial("tcp4", srv.Addr())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			want := make([]byte, size)
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for j := range want {
				want[j] = byte(rng.Uint32())
			}
			half := make(chan struct{})
			wrote := make(chan error, 1)
			go func() {
				for off := 0; off < size; off += 64 << 10 {
					if off == 2<<20 {
						close(half) // 2 MiB written, none read: the server is behind
					}
					if _, err := c.Write(want[off : off+64<<10]); err != nil {
						wrote <- err
						return
					}
				}
				wrote <- nil
			}()
			select {
			case <-half:
			case err := <-wrote:
				errs <- err
				return
			}
			got := make([]byte, size)
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- err
				return
			}
			if err := <-wrote; err != nil {
				errs <- err
			} else if !bytes.Equal(got, want) {
				errs <- io.ErrUnexpectedEOF
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	resumes := 0
	for _, lp := range srv.(*uringServer).loops { // after Close: the loops are done
		resumes += lp.resumes
	}
	if resumes == 0 {
		t.Error("no receive was paused and resumed")
	}
}

// Connections opened and closed one after another reuse descriptors; each
// is served as a new connection (its sequence number tells its completions
// from the last one's), and Close finds every loop clean.
func TestUringReuse(t *testing.T) {
	srv, err := StartUring("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	buf := make([]byte, 3)
	for i := range 300 {
		c, err := net.DialTimeout("tcp4", srv.Addr(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := []byte{byte(i), byte(i >> 8), 42}
		if _, err := c.Write(msg); err == nil {
			_, err = io.ReadFull(c, buf)
		}
		c.Close()
		if err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("connection %d: %q, %v; want %q", i, buf, err, msg)
		}
	}
	// One left open with a request, one half-closed: Close cancels them.
	c, err := net.DialTimeout("tcp4", srv.Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Errorf("after Close the connection ended with %v, want EOF or a reset", err)
	}
}

func isReset(err error) bool { return errors.Is(err, unix.ECONNRESET) }
