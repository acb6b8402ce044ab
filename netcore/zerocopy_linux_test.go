package netcore_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// countCalls installs a filter that counts calls of op (and lowers every
// transfer of it to at most short bytes, if short > 0, to force partial
// transfers). Tests that use it must not run in parallel.
func countCalls(t *testing.T, op sys.Op, short int) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	restore := sys.SetFilter(func(c *sys.Call) error {
		if c.Op == op {
			n.Add(1)
			if short > 0 && c.Len > short {
				c.Len = short
			}
		}
		return nil
	})
	t.Cleanup(restore)
	return &n
}

// readAllAsync reads c to EOF in a goroutine.
func readAllAsync(c io.Reader) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		ch <- b
	}()
	return ch
}

// TestReadFromFileSendfile: io.Copy from a regular file to a Conn uses
// sendfile(2), moves the file byte for byte from its current offset
// (advancing it), and honours an io.LimitedReader, in both modes.
func TestReadFromFileSendfile(t *testing.T) {
	want := testkit.RandomBytes(3<<20 + 123)
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			calls := countCalls(t, sys.OpSendfile, 100<<10) // short transfers too
			client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Seek(5, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got := readAllAsync(server)
			n, err := io.Copy(client, &io.LimitedReader{R: f, N: 1 << 20})
			if err != nil || n != 1<<20 {
				t.Fatalf("io.Copy of a 1 MiB LimitedReader = %d, %v", n, err)
			}
			n, err = io.Copy(client, f)
			if err != nil || n != int64(len(want)-5-(1<<20)) {
				t.Fatalf("io.Copy of the rest = %d, %v, want %d", n, err, len(want)-5-(1<<20))
			}
			client.CloseWrite()
			if b := testkit.WaitFor(t, got, "the peer's read"); !bytes.Equal(b, want[5:]) {
				t.Fatalf("peer got %d bytes, want the file's %d from offset 5", len(b), len(want)-5)
			}
			if calls.Load() < 30 {
				t.Errorf("%d sendfile calls for 3 MiB in 100 KiB pieces: the copy did not use sendfile", calls.Load())
			}
		})
	}
}

// TestReadFromConnSplice: io.Copy from one Conn to another moves the
// bytes with splice(2), byte for byte, in both modes (a proxy's inner
// loop); WriteTo does the same from the other side.
func TestReadFromConnSplice(t *testing.T) {
	pair := func(t *testing.T, blocking bool, network string) (client, server *netcore.Conn) {
		address := "127.0.0.1:0"
		if network == "unix" {
			address = testkit.UnixPath(t)
		}
		client, server, _ = testkit.ModePair(t, blocking, network, address)
		return client, server
	}
	// A proxy between TCP and Unix sockets splices too, either way.
	for _, nets := range [][2]string{{"tcp4", "tcp4"}, {"unix", "tcp4"}, {"tcp4", "unix"}} {
		for _, blocking := range testkit.Modes {
			t.Run(nets[0]+"-to-"+nets[1]+"/"+testkit.ModeName(blocking), func(t *testing.T) {
				inClient, inServer := pair(t, blocking, nets[0])
				outClient, outServer := pair(t, blocking, nets[1])
				testReadFromConnSplice(t, inClient, inServer, outClient, outServer)
			})
		}
	}
}

func testReadFromConnSplice(t *testing.T, inClient, inServer, outClient, outServer *netcore.Conn) {
	calls := countCalls(t, sys.OpSplice, 0)
	want := testkit.RandomBytes(2<<20 + 7)
	go func() {
		inClient.Write(want)
		inClient.CloseWrite()
	}()
	got := readAllAsync(outClient)
	n, err := io.Copy(outServer, inServer) // ReadFrom
	if err != nil || n != int64(len(want)) {
		t.Fatalf("io.Copy Conn to Conn = %d, %v, want %d", n, err, len(want))
	}
	outServer.CloseWrite()
	if b := testkit.WaitFor(t, got, "the far end's read"); !bytes.Equal(b, want) {
		t.Fatalf("far end got %d bytes, want %d exactly", len(b), len(want))
	}
	if calls.Load() == 0 {
		t.Errorf("no splice calls: the Conn-to-Conn copy went through user memory")
	}

	// WriteTo, the other way round.
	msg := []byte("back the other way")
	go func() {
		outClient.Write(msg)
		outClient.CloseWrite()
	}()
	back := readAllAsync(inClient)
	if n, err := outServer.WriteTo(inServer); err != nil || n != int64(len(msg)) {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	inServer.CloseWrite()
	if b := testkit.WaitFor(t, back, "the reverse read"); !bytes.Equal(b, msg) {
		t.Fatalf("reverse copy got %q, want %q", b, msg)
	}
}

// TestReadFromFallback: a source the kernel cannot copy from (a
// bytes.Reader, a pipe) is copied through a buffer, byte for byte.
func TestReadFromFallback(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
		want := testkit.RandomBytes(1<<20 + 3)
		got := readAllAsync(server)
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			pw.Write(want[1000:])
			pw.Close()
		}()
		n1, err1 := io.Copy(client, bytes.NewReader(want[:1000]))
		n2, err2 := client.ReadFrom(pr)
		pr.Close()
		client.CloseWrite()
		if err1 != nil || err2 != nil || n1+n2 != int64(len(want)) {
			t.Fatalf("%s: copies = %d, %v and %d, %v", testkit.ModeName(blocking), n1, err1, n2, err2)
		}
		if b := testkit.WaitFor(t, got, "the peer's read"); !bytes.Equal(b, want) {
			t.Fatalf("%s: peer got %d bytes, want %d exactly", testkit.ModeName(blocking), len(b), len(want))
		}
		var buf bytes.Buffer
		go func() {
			server.Write([]byte("to a buffer"))
			server.CloseWrite()
		}()
		if n, err := client.WriteTo(&buf); err != nil || n != 11 || buf.String() != "to a buffer" {
			t.Fatalf("%s: WriteTo a bytes.Buffer = %d, %v, %q", testkit.ModeName(blocking), n, err, buf.String())
		}
	}
}

// TestWritev: a vectored write sends every buffer in order, through
// short writes and past IOV_MAX buffers, without touching the caller's
// slice, and reports a deadline like Write, in both modes.
func TestWritev(t *testing.T) {
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			calls := countCalls(t, sys.OpWritev, 3000) // short writes
			client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			var bufs [][]byte
			var want []byte
			for i := range 2500 {
				b := testkit.RandomBytes(i % 17) // some empty
				bufs = append(bufs, b)
				want = append(want, b...)
			}
			saved := make([][]byte, len(bufs))
			copy(saved, bufs)
			got := readAllAsync(server)
			n, err := client.Writev(bufs)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("Writev = %d, %v, want %d", n, err, len(want))
			}
			client.CloseWrite()
			if b := testkit.WaitFor(t, got, "the peer's read"); !bytes.Equal(b, want) {
				t.Fatalf("peer got %d bytes, want %d in order", len(b), len(want))
			}
			if diff := cmp.Diff(saved, bufs); diff != "" {
				t.Errorf("Writev changed the caller's buffers (-before +after):\n%s", diff)
			}
			if calls.Load() < int64(len(want)/3000) {
				t.Errorf("%d writev calls for %d bytes in 3000-byte pieces", calls.Load(), len(want))
			}
			client.SetWriteDeadline(time.Now().Add(-time.Second))
			if _, err := client.Writev([][]byte{[]byte("late")}); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Writev after the deadline = %v, want os.ErrDeadlineExceeded", err)
			}
			client.Close()
			if _, err := client.Writev([][]byte{[]byte("closed")}); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Writev after Close = %v, want net.ErrClosed", err)
			}
		})
	}
}

// The zero-copy and vectored paths stay allocation-free in steady state,
// in both modes: Writev of two buffers, and splice(2) from another Conn
// through a reused io.LimitedReader.
func TestWritevAllocations(t *testing.T) {
	for _, blocking := range testkit.Modes {
		client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
		src, peer, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
		bufs := [][]byte{make([]byte, 8), make([]byte, 56)}
		buf := make([]byte, 64)
		lr := &io.LimitedReader{R: peer}
		for _, tt := range []struct {
			name  string
			write func() error
		}{
			{"Writev of two buffers", func() error { _, err := client.Writev(bufs); return err }},
			{"ReadFrom another Conn", func() error {
				if _, err := src.Write(buf); err != nil {
					return err
				}
				lr.N = int64(len(buf))
				_, err := client.ReadFrom(lr)
				return err
			}},
		} {
			round := func() {
				if err := tt.write(); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(server, buf); err != nil {
					t.Fatal(err)
				}
			}
			round()
			if n := testing.AllocsPerRun(200, round); n != 0 {
				t.Errorf("%s: %s allocates %v times, want 0", testkit.ModeName(blocking), tt.name, n)
			}
		}
	}
}

var _ interface {
	io.ReaderFrom
	io.WriterTo
} = (*netcore.Conn)(nil)
