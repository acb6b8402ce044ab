package netcore_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// chunkConn writes what a TLS client sends cut into writes of chosen
// sizes (netcore's sockets have TCP_NODELAY, so each goes out as a
// segment of its own): with perRecord false, sizes cut the whole stream,
// one after the other, and once they are used up each Write goes whole;
// with perRecord true, every record starts a write of its own and sizes
// cut it again from its start, the rest of the record going whole. (A Go
// TLS client's every Write holds whole records.)
type chunkConn struct {
	*netcore.Conn
	sizes     []int
	perRecord bool
	pos       int64 // stream offset of the next byte written
	next      int   // the stream's next size
	cut       int64 // stream offset of the next cut, -1 for none
	writes    int   // write(2) calls made
}

func (c *chunkConn) Write(p []byte) (int, error) {
	cuts := c.cuts(p)
	c.pos += int64(len(p))
	start := 0
	for _, end := range append(cuts, len(p)) {
		if end <= start {
			continue
		}
		c.writes++
		if n, err := c.Conn.Write(p[start:end]); err != nil {
			return start + n, err
		}
		start = end
	}
	return len(p), nil
}

// cuts returns the offsets in p at which a new write begins, in order.
func (c *chunkConn) cuts(p []byte) []int {
	var cuts []int
	if c.perRecord {
		for r := 0; r+5 <= len(p); {
			end := r + 5 + (int(p[r+3])<<8 | int(p[r+4]))
			cuts = append(cuts, r)
			at := r
			for _, n := range c.sizes {
				if at += n; at >= min(end, len(p)) {
					break
				}
				cuts = append(cuts, at)
			}
			r = end
		}
		return cuts
	}
	if c.cut < 0 && c.next == 0 && len(c.sizes) > 0 {
		c.cut = int64(c.sizes[0])
		c.next = 1
	}
	end := c.pos + int64(len(p))
	for c.cut >= 0 && c.cut < end {
		cuts = append(cuts, int(c.cut-c.pos))
		if c.next < len(c.sizes) {
			c.cut += int64(c.sizes[c.next])
			c.next++
		} else {
			c.cut = -1
		}
	}
	return cuts
}

// fuzzTLSMessages are what the client sends after the handshake, one at a
// time, each echoed: a byte, a few hundred, one just past a record's 16 KiB
// and one of three records.
var fuzzTLSMessages = []int{1, 300, 16<<10 + 1, 40000}

// FuzzLoopTLSFragmentation runs a TLS 1.2 or 1.3 conversation with an echo
// Loop served with ServeTLS, every byte of the Go client's (its handshake
// flights, its requests, its close_notify) written to the socket cut where
// the fuzzer says: mode bit 0 picks TLS 1.3, bit 1 restarts the cuts at
// every record, bit 2 (TLS 1.3) holds the client's last handshake flight
// back until its first message is written, so that both go in one stream
// of cuts; each byte b of cuts is a write of b+1 bytes. Whatever the
// cutting, each message comes back byte for byte, the client's
// close_notify brings the server's (then EOF), and the server's OnClose
// gets io.EOF.
func FuzzLoopTLSFragmentation(f *testing.F) {
	ones := bytes.Repeat([]byte{0}, 200) // one byte at a time for the first 200 bytes
	f.Add(byte(0), ones)
	f.Add(byte(1), ones)
	f.Add(byte(2), []byte{4, 2}) // every record: its header, 3 bytes, the rest
	f.Add(byte(3), []byte{4, 2})
	f.Add(byte(3), []byte{2, 1, 0, 0}) // every header cut 3/2, then two single bytes
	f.Add(byte(1), []byte{})
	f.Add(byte(0), []byte{255, 16, 0, 7, 99, 1})
	f.Add(byte(5), []byte{})       // the Finished and the first message in one write
	f.Add(byte(7), []byte{4, 200}) // ...cut at every record

	trs := transports(f)
	var closes sync.Map // client port -> chan error: OnClose's reason
	lp := &netcore.Loop{Handler: &reportClose{LoopHandler: loopEcho(nil), to: &closes}, Loops: 2}
	addr := serveLoopWith(f, lp, testkit.Listen(f, "tcp4", "127.0.0.1:0"), trs[1].serveFunc(lp))

	f.Fuzz(func(t *testing.T, mode byte, cuts []byte) {
		tr := trs[1+int(mode&1)]
		cuts = cuts[:min(len(cuts), 256)]
		sizes := make([]int, len(cuts))
		for i, b := range cuts {
			sizes[i] = int(b) + 1
		}
		raw := dialLoop(t, addr)
		closed := make(chan error, 1)
		closes.Store(raw.LocalSockaddr().Port(), closed)
		defer closes.Delete(raw.LocalSockaddr().Port())
		cc := &chunkConn{Conn: raw, sizes: sizes, perRecord: mode&2 != 0, cut: -1}
		var cork *corkConn
		var c clientConn
		if mode&4 != 0 && tr.version == tls.VersionTLS13 {
			// A TLS 1.3 client's handshake ends with its own flight,
			// without waiting for the server: it can be held back.
			cork = &corkConn{clientConn: cc}
			c = tr.client(t, cork)
		} else {
			c = tr.client(t, cc)
		}
		for i, n := range fuzzTLSMessages {
			msg := bytes.Repeat([]byte{byte('a' + i)}, n)
			msg[n-1] = '.'
			// Written from a goroutine: the echo of a long message
			// comes back while the rest is still being written.
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(msg)
				if cork != nil && i == 0 {
					err = errors.Join(err, cork.uncork())
				}
				werr <- err
			}()
			got := make([]byte, n)
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("%s, message %d (%d bytes), %d writes so far: reading the echo: %v", tr.name, i, n, cc.writes, err)
			}
			if !bytes.Equal(got, msg) {
				k := firstDiff(got, msg)
				t.Fatalf("%s, message %d (%d bytes): the echo differs at byte %d", tr.name, i, n, k)
			}
			if err := testkit.WaitFor(t, werr, "the write"); err != nil {
				t.Fatalf("%s, message %d: %v", tr.name, i, err)
			}
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
		if rest, err := io.ReadAll(c); err != nil || len(rest) > 0 {
			t.Fatalf("%s: after close_notify, read %q, then %v; want close_notify, then EOF", tr.name, rest, err)
		}
		if err := testkit.WaitFor(t, closed, "OnClose"); err != io.EOF {
			t.Fatalf("%s: the server closed with %v, want io.EOF", tr.name, err)
		}
		// The cutting happened: each cut inside the stream began a write.
		if !cc.perRecord {
			at, want := int64(0), 0
			for _, n := range sizes {
				if at += int64(n); at >= cc.pos {
					break
				}
				want++
			}
			if cc.writes < want {
				t.Fatalf("%d writes for a %d-byte stream cut %d times", cc.writes, cc.pos, want)
			}
		}
		t.Logf("%s: %d bytes in %d writes", tr.name, cc.pos, cc.writes)
	})
}

// reportClose is a LoopHandler that, beside its own, reports each
// connection's close reason on the channel filed under its client's port.
type reportClose struct {
	netcore.LoopHandler
	to *sync.Map
}

func (h *reportClose) OnClose(c *netcore.LoopConn, err error) {
	h.LoopHandler.OnClose(c, err)
	if ch, ok := h.to.LoadAndDelete(c.RemoteSockaddr().Port()); ok {
		ch.(chan error) <- err
	}
}
