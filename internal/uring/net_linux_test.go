package uring

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen makes a TCP listener on 127.0.0.1, port 0, closed when the test
// ends, and returns it with its address.
func listen(t *testing.T) (int, *unix.SockaddrInet4) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4)
}

// dial connects a blocking TCP socket to sa, closed when the test ends.
func dial(t *testing.T, sa *unix.SockaddrInet4) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatal(err)
	}
	return fd
}

// tcpPair is a connected TCP pair over loopback: a (the dialer) and b (the
// accepted end, non-blocking), closed when the test ends.
func tcpPair(t *testing.T) (a, b int) {
	t.Helper()
	l, sa := listen(t)
	a = dial(t, sa)
	b, _, err := unix.Accept4(l, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(b) })
	return a, b
}

const (
	udAccept = iota + 1
	udSrvRecv
	udCliRecv
	udSrvSend // | bid<<8
	udCliSend
	udCancel
)

// prep queues one submission, submitting first if the SQ is full.
func prep(t *testing.T, r *Ring, f func() bool) {
	t.Helper()
	if f() {
		return
	}
	if _, err := r.Submit(); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if !f() {
		t.Fatal("the SQ is still full after Submit")
	}
}

// An echo over TCP loopback entirely through one ring: a multishot accept
// on the listener, multishot receives into a buffer ring on both ends, the
// server sending back each buffer as it came (then recycling it), the
// client sending its payload in as many sends as the kernel asks. What the
// client gets back is byte-exact, from 1 byte to 1 MiB, and the ring ends
// with every request cancelled and every descriptor closed.
func TestEchoThroughRing(t *testing.T) {
	checkNoFDLeak(t)
	for _, size := range []int{1, 100, 4096, 65536 + 7, 1 << 20} {
		echo(t, size)
	}
}

func echo(t *testing.T, size int) {
	r := newRing(t, 16, Options{})
	const bufSize, nbufs = 4096, 64
	br, err := r.NewBufRing(1, nbufs, bufSize)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := br.Close(); err != nil {
			t.Errorf("BufRing.Close: %v", err)
		}
	}()
	l, sa := listen(t)
	cli := dial(t, sa)
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(rand.Uint32())
	}

	srv := -1
	var got []byte
	sent := 0
	var srvSendOff [nbufs]int // bytes of each buffer the server has sent back
	var srvSendLen [nbufs]int
	srvArmed, cliArmed, accArmed := false, false, true
	var todo []func() bool // submissions decided while reaping

	prep(t, r, func() bool { return r.PrepAcceptMultishot(l, udAccept) })
	prep(t, r, func() bool { return r.PrepRecvMultishot(cli, br.Group(), 0, udCliRecv) })
	cliArmed = true
	prep(t, r, func() bool { return r.PrepSend(cli, payload, false, udCliSend) })
	enobufs := 0

	deadline := time.Now().Add(10 * time.Second)
	for len(got) < size {
		if time.Now().After(deadline) {
			t.Fatalf("size %d: %d bytes back after 10s", size, len(got))
		}
		if _, err := r.SubmitAndWait(1, time.Until(deadline)); err != nil {
			t.Fatal(err)
		}
		r.ForEachCQE(func(ud uint64, res int32, flags uint32) {
			bid, hasBuf := BufferID(flags)
			switch kind := ud & 0xff; kind {
			case udAccept:
				accArmed = More(flags)
				if res < 0 {
					t.Errorf("accept: %v", unix.Errno(-res))
					return
				}
				srv = int(res)
				t.Cleanup(func() { unix.Close(int(res)) })
				todo = append(todo, func() bool { return r.PrepRecvMultishot(srv, br.Group(), 0, udSrvRecv) })
				srvArmed = true
			case udSrvRecv, udCliRecv:
				if !More(flags) {
					if kind == udSrvRecv {
						srvArmed = false
					} else {
						cliArmed = false
					}
				}
				switch {
				case res == -int32(unix.ENOBUFS):
					enobufs++ // re-armed below, once buffers come back
				case res < 0:
					t.Errorf("recv: %v", unix.Errno(-res))
				case res > 0 && !hasBuf:
					t.Errorf("recv of %d bytes without a buffer (flags %#x)", res, flags)
				case res > 0 && kind == udCliRecv:
					got = append(got, br.Buf(bid, int(res))...)
					br.Recycle(bid)
				case res > 0: // the server echoes the buffer, recycled once sent
					srvSendOff[bid], srvSendLen[bid] = 0, int(res)
					todo = append(todo, func() bool {
						return r.PrepSend(srv, br.Buf(bid, int(res)), false, udSrvSend|uint64(bid)<<8)
					})
				case res == 0:
					t.Errorf("unexpected EOF")
				}
			case udSrvSend:
				bid := uint16(ud >> 8)
				if res < 0 {
					t.Errorf("server send: %v", unix.Errno(-res))
					return
				}
				srvSendOff[bid] += int(res)
				if off := srvSendOff[bid]; off < srvSendLen[bid] { // a short send: the rest
					todo = append(todo, func() bool {
						return r.PrepSend(srv, br.Buf(bid, srvSendLen[bid])[off:], false, udSrvSend|uint64(bid)<<8)
					})
				} else {
					br.Recycle(bid)
				}
			case udCliSend:
				if res < 0 {
					t.Errorf("client send: %v", unix.Errno(-res))
					return
				}
				if sent += int(res); sent < size {
					todo = append(todo, func() bool { return r.PrepSend(cli, payload[sent:], false, udCliSend) })
				}
			}
		})
		if t.Failed() {
			t.FailNow()
		}
		for _, f := range todo {
			prep(t, r, f)
		}
		todo = todo[:0]
		if !srvArmed && srv >= 0 {
			prep(t, r, func() bool { return r.PrepRecvMultishot(srv, br.Group(), 0, udSrvRecv) })
			srvArmed = true
		}
		if !cliArmed {
			prep(t, r, func() bool { return r.PrepRecvMultishot(cli, br.Group(), 0, udCliRecv) })
			cliArmed = true
		}
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("size %d: the echo differs from what was sent (%d bytes back)", size, len(got))
	}
	t.Logf("size %d: echoed, %d ENOBUFS on the way", size, enobufs)

	// Cancel everything still armed; each multishot request ends with
	// -ECANCELED and no F_MORE.
	prep(t, r, func() bool { return r.PrepCancelFD(srv, udCancel) })
	prep(t, r, func() bool { return r.PrepCancelFD(cli, udCancel) })
	prep(t, r, func() bool { return r.PrepCancelFD(l, udCancel) })
	for srvArmed || cliArmed || accArmed {
		if time.Now().After(deadline) {
			t.Fatalf("still armed after cancelling: server %v, client %v, accept %v", srvArmed, cliArmed, accArmed)
		}
		if _, err := r.SubmitAndWait(1, time.Until(deadline)); err != nil {
			t.Fatal(err)
		}
		r.ForEachCQE(func(ud uint64, res int32, flags uint32) {
			var armed *bool
			switch ud & 0xff {
			case udAccept:
				armed = &accArmed
			case udSrvRecv:
				armed = &srvArmed
			case udCliRecv:
				armed = &cliArmed
			default:
				return
			}
			if !More(flags) {
				*armed = false
				if res != -int32(unix.ECANCELED) {
					t.Errorf("request %d ended with %d, want -ECANCELED", ud, res)
				}
			}
		})
	}
}
