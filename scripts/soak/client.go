package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The kinds of client, in the order they are reported. The first three are
// well-behaved: every reply they are owed must arrive, byte for byte.
const (
	kindPipeline  = "pipeline"  // pipelines random frames (0 B to 64 KiB), verifies every reply
	kindSlow      = "slow"      // reads its replies a few bytes at a time, with pauses
	kindHalfClose = "halfclose" // sends requests, half-closes, must get the replies, then EOF
	kindNever     = "never"     // sends requests and never reads: the server's limits must drop it
	kindReset     = "reset"     // one round trip, then half a frame and a reset (SO_LINGER 0)
	kindGarbage   = "garbage"   // random bytes, or a header over the maximum: must be answered and closed
	kindIdle      = "idle"      // sends nothing, or half a frame, and waits: IdleTimeout must close it
	kindVanish    = "vanish"    // connects and closes at once (half of them with a reset)

	// Against TLS servers only.
	kindStall    = "stall"    // stops mid-handshake: TLSHandshakeTimeout must close it
	kindBadHello = "badhello" // an HTTP request or random bytes instead of a ClientHello: must be closed
	kindResume   = "resume"   // round trips on connection after connection, each resuming the session
)

var kinds = []string{kindPipeline, kindSlow, kindHalfClose, kindResume, kindNever, kindReset, kindGarbage, kindIdle, kindVanish, kindStall, kindBadHello}

// wellBehaved reports whether every reply owed to a client of kind k
// must arrive.
func wellBehaved(k string) bool {
	return k == kindPipeline || k == kindSlow || k == kindHalfClose || k == kindResume
}

// tlsOnly reports whether clients of kind k run against TLS servers only.
func tlsOnly(k string) bool {
	return k == kindStall || k == kindBadHello || k == kindResume
}

const defaultMix = "pipeline=16,slow=4,halfclose=3,never=6,reset=3,garbage=3,idle=2,vanish=3,stall=2,badhello=2,resume=2"

// parseMix parses "kind=n,...": how many clients of each kind run at once.
func parseMix(s string) (map[string]int, error) {
	mix := make(map[string]int)
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("bad -clients element %q (want kind=n, n >= 0)", f)
		}
		known := false
		for _, kk := range kinds {
			known = known || k == kk
		}
		if !known {
			return nil, fmt.Errorf("unknown client kind %q in -clients (kinds: %s)", k, strings.Join(kinds, ", "))
		}
		mix[k] = n
	}
	return mix, nil
}

// clientConfig configures the client role.
type clientConfig struct {
	Addr   string
	Time   time.Duration
	Mix    map[string]int
	Seed   int64
	Limits limits
	TLS    *tls.Config // the clients' TLS configuration; nil against a plaintext server
}

// tally is one kind's outcome, as the client reports it.
type tally struct {
	Conns    int64    `json:"conns"`    // connections made
	Requests int64    `json:"requests"` // replies verified byte for byte
	Bytes    int64    `json:"bytes"`    // payload bytes of those replies
	Errors   int64    `json:"errors"`   // failures: a reply lost or wrong, a limit that did not act
	Dropped  int64    `json:"dropped"`  // never, idle: dropped by the server's limits; garbage: answered and closed
	MaxDrop  Duration `json:"max_drop"` // never, idle: the longest wait for the drop (from the first stalled write; from going idle)
	EOFs     int64    `json:"eofs"`     // garbage, badhello: the server's close seen as EOF
	Resets   int64    `json:"resets"`   // garbage, badhello: ... as a reset
	Resumed  int64    `json:"resumed"`  // resume: connections that resumed a TLS session
	// BadTLS counts the connections that made the server's handshake
	// fail on purpose: against a TLS server, every stall, badhello and
	// vanish connection (and a never connection whose handshake the
	// run's end cut short).
	BadTLS  int64    `json:"bad_tls"`
	Samples []string `json:"samples"` // the first few errors
}

// Duration is a time.Duration that encodes as text in JSON.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// clientResult is the client role's report: one tally per kind.
type clientResult struct {
	Kinds map[string]*tally `json:"kinds"`
}

// counts is a kind's live counters.
type counts struct {
	kind                                    string
	conns, requests, bytes, errors, dropped atomic.Int64
	maxDrop, eofs, resets, resumed, badTLS  atomic.Int64
	mu                                      sync.Mutex
	samples                                 []string
	log                                     io.Writer
}

func (c *counts) fail(format string, args ...any) {
	c.errors.Add(1)
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) < 5 {
		c.samples = append(c.samples, msg)
		fmt.Fprintf(c.log, "soak client %s: %s\n", c.kind, msg)
	}
}

// droppedAfter counts a connection the server's limits closed after it
// had waited d.
func (c *counts) droppedAfter(d time.Duration) {
	c.dropped.Add(1)
	for m := c.maxDrop.Load(); int64(d) > m && !c.maxDrop.CompareAndSwap(m, int64(d)); m = c.maxDrop.Load() {
	}
}

func (c *counts) verified(n int) {
	c.requests.Add(1)
	c.bytes.Add(int64(n))
}

func (c *counts) tally() *tally {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &tally{
		Conns: c.conns.Load(), Requests: c.requests.Load(), Bytes: c.bytes.Load(),
		Errors: c.errors.Load(), Dropped: c.dropped.Load(), MaxDrop: Duration(c.maxDrop.Load()),
		EOFs: c.eofs.Load(), Resets: c.resets.Load(), Resumed: c.resumed.Load(), BadTLS: c.badTLS.Load(),
		Samples: append([]string(nil), c.samples...),
	}
}

// pool is random bytes that payloads are cut from; each payload also
// carries a sequence number in its first 8 bytes, so that no two replies
// are alike.
var pool = func() []byte {
	b := make([]byte, 1<<20+maxPayload)
	r := rand.NewChaCha8([32]byte{'s', 'o', 'a', 'k'})
	r.Read(b)
	return b
}()

// request is one request: its payload is pool[off:off+n] with seq in the
// first (up to) 8 bytes.
type request struct {
	seq    uint64
	off, n int
}

// appendFrame appends q's frame to b.
func (q request) appendFrame(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(q.n))
	start := len(b)
	b = append(b, pool[q.off:q.off+q.n]...)
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], q.seq)
	copy(b[start:], s[:min(8, q.n)])
	return b
}

// check compares a reply's payload with q's.
func (q request) check(got []byte) error {
	want := q.appendFrame(nil)[4:]
	if bytes.Equal(got, want) {
		return nil
	}
	if len(got) != len(want) {
		return fmt.Errorf("reply to request %d: %d bytes, want %d", q.seq, len(got), len(want))
	}
	i := 0
	for got[i] == want[i] {
		i++
	}
	return fmt.Errorf("reply to request %d (%d bytes): byte %d is %#x, want %#x", q.seq, q.n, i, got[i], want[i])
}

// client is one worker: it makes connections of its kind, one at a time,
// until the run ends.
type client struct {
	cfg  clientConfig
	c    *counts
	rng  *rand.Rand
	seq  *atomic.Uint64
	srcs *atomic.Uint32

	sessions tls.ClientSessionCache // resume: the worker's TLS sessions
	version  uint16                 // resume: the worker's TLS version
	conns    int                    // resume: connections that completed their handshake
}

// opTimeout bounds every wait of a well-behaved exchange: a reply that
// has not come by then is lost.
const opTimeout = 20 * time.Second

// newRequest draws a request of 0 to limit bytes (at most 64 KiB), its
// size spread evenly over the powers of two, so that small and large
// frames are both common.
func (w *client) newRequest(limit int) request {
	n := min(w.rng.IntN(1<<w.rng.IntN(17)+1), limit)
	return request{seq: w.seq.Add(1), off: w.rng.IntN(len(pool) - maxPayload), n: n}
}

// dial connects from a rotating source address (127.0.0.2 to 127.0.0.201),
// so that short-lived connections do not run out of ephemeral ports.
func (w *client) dial() (*net.TCPConn, error) {
	i := w.srcs.Add(1)
	d := net.Dialer{
		Timeout:   opTimeout,
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%200))},
	}
	c, err := d.Dial("tcp", w.cfg.Addr)
	if err != nil {
		return nil, err
	}
	w.c.conns.Add(1)
	return c.(*net.TCPConn), nil
}

// tlsConfig is the TLS configuration of one connection: TLS 1.3, or 1.2
// for one connection in four.
func (w *client) tlsConfig() *tls.Config {
	cfg := w.cfg.TLS.Clone()
	if w.rng.IntN(4) == 0 {
		cfg.MaxVersion = tls.VersionTLS12
	}
	return cfg
}

// open dials and, against a TLS server, makes the handshake over wrap(raw)
// (raw itself if wrap is nil) with config (w.tlsConfig() if nil),
// verifying the server's certificate. c is what the protocol is spoken
// over: the *tls.Conn, or raw.
func (w *client) open(wrap func(*net.TCPConn) net.Conn, config *tls.Config) (c net.Conn, raw *net.TCPConn, err error) {
	raw, err = w.dial()
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %v", err)
	}
	if w.cfg.TLS == nil {
		return raw, raw, nil
	}
	if config == nil {
		config = w.tlsConfig()
	}
	var under net.Conn = raw
	if wrap != nil {
		under = wrap(raw)
	}
	tc := tls.Client(under, config)
	raw.SetDeadline(time.Now().Add(opTimeout))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	raw.SetDeadline(time.Time{})
	return tc, raw, nil
}

// closeWrite half-closes c: with TLS, close_notify, then the TCP
// half-close.
func closeWrite(c net.Conn, raw *net.TCPConn) error {
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			return err
		}
	}
	return raw.CloseWrite()
}

// exchangeSome makes 1 to most random requests and exchanges them over c
// within opTimeout.
func (w *client) exchangeSome(c net.Conn, most int) error {
	reqs := make([]request, 1+w.rng.IntN(most))
	for i := range reqs {
		reqs[i] = w.newRequest(maxPayload)
	}
	c.SetDeadline(time.Now().Add(opTimeout))
	return w.exchange(c, reqs, c)
}

// exchange sends reqs, written in random pieces by another goroutine
// while this one reads, and verifies every reply. read reads replies: a
// plain reader, or a slow one.
func (w *client) exchange(c net.Conn, reqs []request, read io.Reader) error {
	var frames []byte
	for _, q := range reqs {
		frames = q.appendFrame(frames)
	}
	cuts := make([]int, 0, 8)
	for range w.rng.IntN(8) {
		cuts = append(cuts, w.rng.IntN(len(frames)+1))
	}
	wrote := make(chan error, 1)
	go func() {
		rest := frames
		for _, cut := range cuts {
			if cut := min(cut, len(rest)); cut > 0 {
				if _, err := c.Write(rest[:cut]); err != nil {
					wrote <- err
					return
				}
				rest = rest[cut:]
			}
		}
		_, err := c.Write(rest)
		wrote <- err
	}()
	var hdr [4]byte
	buf := make([]byte, maxPayload)
	for _, q := range reqs {
		if _, err := io.ReadFull(read, hdr[:]); err != nil {
			<-wrote
			return fmt.Errorf("reading the reply to request %d (%d bytes): %v", q.seq, q.n, err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxPayload {
			<-wrote
			return fmt.Errorf("reply to request %d (%d bytes) has length %d", q.seq, q.n, n)
		}
		if _, err := io.ReadFull(read, buf[:n]); err != nil {
			<-wrote
			return fmt.Errorf("reading the reply to request %d (%d bytes): %v", q.seq, q.n, err)
		}
		if err := q.check(buf[:n]); err != nil {
			<-wrote
			return err
		}
		w.c.verified(int(n))
	}
	if err := <-wrote; err != nil {
		return fmt.Errorf("writing: %v", err)
	}
	return nil
}

// slowReader reads 1 to 64 bytes per Read, pausing up to maxPause before
// each.
type slowReader struct {
	r        io.Reader
	rng      *rand.Rand
	maxPause time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Duration(s.rng.Int64N(int64(s.maxPause)))) // pacing, not synchronisation
	return s.r.Read(p[:min(len(p), 1+s.rng.IntN(64))])
}

// pipeline: a connection carries 1 to 20 batches of 1 to 32 pipelined
// requests; every reply is checked.
func (w *client) pipeline(ctx context.Context) {
	c, _, err := w.open(nil, nil)
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	defer c.Close()
	for range 1 + w.rng.IntN(20) {
		if ctx.Err() != nil {
			return
		}
		if err := w.exchangeSome(c, 32); err != nil {
			w.c.fail("%v", err)
			return
		}
	}
}

// slow: 1 to 5 requests of up to 8 KiB, one at a time, each reply read a
// few bytes at a time with pauses of up to IdleTimeout/2000: about 250
// reads for 8 KiB, which take a tenth of IdleTimeout on average, so
// that the reader is slow but not idle in the limits' sense (nothing read
// or written for IdleTimeout).
func (w *client) slow(ctx context.Context) {
	c, _, err := w.open(nil, nil)
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	defer c.Close()
	for range 1 + w.rng.IntN(5) {
		if ctx.Err() != nil {
			return
		}
		c.SetDeadline(time.Now().Add(opTimeout))
		if err := w.exchange(c, []request{w.newRequest(8 << 10)}, slowReader{c, w.rng, max(w.cfg.Limits.IdleTimeout/2000, time.Microsecond)}); err != nil {
			w.c.fail("%v", err)
			return
		}
	}
}

// halfClose: 1 to 4 requests, then CloseWrite (with TLS, close_notify and
// then CloseWrite); every reply must arrive, then EOF.
func (w *client) halfClose(context.Context) {
	c, raw, err := w.open(nil, nil)
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	defer raw.Close()
	c.SetDeadline(time.Now().Add(opTimeout))
	reqs := make([]request, 1+w.rng.IntN(4))
	var frames []byte
	for i := range reqs {
		reqs[i] = w.newRequest(maxPayload)
		frames = reqs[i].appendFrame(frames)
	}
	if _, err := c.Write(frames); err != nil {
		w.c.fail("writing: %v", err)
		return
	}
	if err := closeWrite(c, raw); err != nil {
		w.c.fail("CloseWrite: %v", err)
		return
	}
	var hdr [4]byte
	buf := make([]byte, maxPayload)
	for _, q := range reqs {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			w.c.fail("after the half-close, reading the reply to request %d (%d bytes): %v", q.seq, q.n, err)
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxPayload {
			w.c.fail("reply to request %d has length %d", q.seq, n)
			return
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			w.c.fail("after the half-close, reading the reply to request %d (%d bytes): %v", q.seq, q.n, err)
			return
		}
		if err := q.check(buf[:n]); err != nil {
			w.c.fail("after the half-close: %v", err)
			return
		}
		w.c.verified(int(n))
	}
	if n, err := c.Read(buf[:1]); n != 0 || err != io.EOF {
		w.c.fail("after the half-close and every reply: Read = %d, %v; want 0, EOF", n, err)
	}
}

// never: sends requests and never reads. Once its writes stall (the
// server stopped reading), it keeps trying to write until the server's
// limits drop it (the write fails), which must happen within
// limits.dropBound.
func (w *client) never(ctx context.Context) {
	var sc *stallConn
	c, raw, err := w.open(func(raw *net.TCPConn) net.Conn {
		sc = &stallConn{TCPConn: raw, ctx: ctx, bound: w.cfg.Limits.dropBound()}
		return sc
	}, nil)
	if errors.Is(err, errRunOver) {
		// The run ended in its handshake (its writes wait out stalls):
		// a failed handshake for the server, and no fault of either.
		w.c.badTLS.Add(1)
		return
	}
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	if sc == nil { // plaintext
		sc = &stallConn{TCPConn: raw, ctx: ctx, bound: w.cfg.Limits.dropBound()}
		c = sc
	}
	defer func() {
		raw.SetLinger(0) // unread replies: a close would be a reset anyway
		raw.Close()
	}()
	var frame []byte
	for {
		frame = w.newRequest(maxPayload).appendFrame(frame[:0])
		_, err := c.Write(frame)
		var be *boundError
		switch {
		case err == nil:
			continue
		case errors.Is(err, errRunOver):
		case errors.As(err, &be):
			w.c.fail("never dropped: writes stalled %v ago and the connection is still open (bound %v)", be.waited.Round(time.Millisecond), sc.bound)
		default:
			// The server closed it: its limits acted (a write deadline
			// shorter than the 250 ms this client takes to see a stall
			// can act before any write of its own stalled).
			var waited time.Duration
			if !sc.stalled.IsZero() {
				waited = time.Since(sc.stalled)
			}
			w.c.droppedAfter(waited)
		}
		return
	}
}

// stallConn is the transport of a client that never reads: a Write waits
// out its stalls (it tries again every 250 ms) until its bytes are out, the
// run ends (errRunOver), bound has passed since the first stall
// (*boundError), or the server dropped the connection (the error). Beneath
// a *tls.Conn too, whose Write must not time out: its state would be
// broken.
type stallConn struct {
	*net.TCPConn
	ctx     context.Context
	bound   time.Duration
	stalled time.Time // the first stall
}

var errRunOver = errors.New("the run ended")

type boundError struct{ waited time.Duration }

func (e *boundError) Error() string { return fmt.Sprintf("writes stalled for %v", e.waited) }

func (s *stallConn) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.ctx.Err() != nil {
			return n, errRunOver
		}
		s.TCPConn.SetWriteDeadline(time.Now().Add(250 * time.Millisecond))
		k, err := s.TCPConn.Write(p[n:])
		n += k // a write cut short is finished first: the stream stays valid
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			if s.stalled.IsZero() {
				s.stalled = time.Now()
			}
			if waited := time.Since(s.stalled); waited > s.bound {
				return n, &boundError{waited}
			}
		default:
			return n, err
		}
	}
	return n, nil
}

// reset: one round trip, then a header and half its payload, then a reset
// (with TLS, a TCP reset in the middle of the TLS stream).
func (w *client) reset(context.Context) {
	c, raw, err := w.open(nil, nil)
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	defer raw.Close()
	c.SetDeadline(time.Now().Add(opTimeout))
	if err := w.exchange(c, []request{w.newRequest(maxPayload)}, c); err != nil {
		w.c.fail("before the reset: %v", err)
		return
	}
	q := w.newRequest(maxPayload)
	q.n = max(q.n, 2)
	frame := q.appendFrame(nil)
	if _, err := c.Write(frame[:4+q.n/2]); err != nil {
		w.c.fail("writing half a frame: %v", err)
		return
	}
	raw.SetLinger(0)
}

// garbage: either random bytes followed by a half-close, or a header
// claiming more than the maximum followed by random bytes (no half-close),
// which must be answered with an error frame naming the length; against a
// TLS server, also random bytes in place of TLS records once the
// handshake is done (to be answered with an alert, or not). Either way
// the server must close the connection within 5 s.
func (w *client) garbage(context.Context) {
	c, raw, err := w.open(nil, nil)
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	defer raw.Close()
	const closeBound = 5 * time.Second
	c.SetDeadline(time.Now().Add(opTimeout))
	off := w.rng.IntN(len(pool) - 8192)
	junk := pool[off : off+w.rng.IntN(8192)]
	variant := w.rng.IntN(2)
	if w.cfg.TLS != nil {
		variant = w.rng.IntN(3)
	}
	oversize := variant == 0
	var claim uint32
	switch variant {
	case 0:
		if w.cfg.TLS != nil {
			// In one TLS record (crypto/tls starts with records of
			// about 1 KiB, each its own write(2)): a server may answer
			// the header and close before a second record arrives,
			// and that record's reset destroys the answer.
			junk = junk[:min(len(junk), 1000)]
		}
		claim = uint32(maxPayload + 1 + w.rng.Int64N(1<<32-maxPayload-1))
		frame := binary.BigEndian.AppendUint32(nil, claim)
		if _, err := c.Write(append(frame, junk...)); err != nil {
			w.c.fail("writing an oversize header: %v", err)
			return
		}
	case 1:
		// The server may have refused a header in the random bytes,
		// answered and closed before they were all written (with TLS
		// they go out record by record), so that the write fails, or
		// the half-close (ENOTCONN after its reset): the read below
		// sees the close.
		if _, err := c.Write(junk); err == nil {
			closeWrite(c, raw)
		}
	case 2:
		// Not TLS records: the server's TLS must refuse them. What
		// comes back (an alert) is read from the socket as it is.
		if _, err := raw.Write(append([]byte{0}, junk...)); err != nil {
			w.c.fail("writing random bytes under TLS: %v", err)
			return
		}
		c = raw
	}
	sent := time.Now()
	c.SetReadDeadline(sent.Add(closeBound))
	got, err := io.ReadAll(c)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.c.fail("not closed %v after garbage (variant %d: oversize header, random bytes, random bytes under TLS)", closeBound, variant)
		return
	case err == nil:
		w.c.eofs.Add(1)
	default:
		w.c.resets.Add(1)
	}
	if oversize {
		want := strconv.FormatUint(uint64(claim), 10)
		if len(got) < 4 || int(binary.BigEndian.Uint32(got)) != len(got)-4 || !bytes.Contains(got[4:], []byte(want)) {
			w.c.fail("after a header claiming %d bytes: got %q (ended with %v), want one frame naming the length", claim, got, err)
			return
		}
	}
	w.c.dropped.Add(1)
}

// idle: connects (with TLS, makes the handshake), sends nothing or half a
// frame, and waits. IdleTimeout must close the connection: not before it
// (within 10%), and within IdleTimeout + LingerTimeout + 5 s.
func (w *client) idle(ctx context.Context) {
	c, raw, err := w.open(nil, nil)
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	defer raw.Close()
	if w.rng.IntN(2) == 0 {
		q := w.newRequest(maxPayload)
		q.n = max(q.n, 2)
		c.SetWriteDeadline(time.Now().Add(opTimeout))
		if _, err := c.Write(q.appendFrame(nil)[:4+q.n/2]); err != nil {
			w.c.fail("writing half a frame: %v", err)
			return
		}
	}
	lim := w.cfg.Limits
	bound := lim.IdleTimeout + lim.LingerTimeout + 5*time.Second
	start := time.Now()
	c.SetReadDeadline(start.Add(bound))
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) }) // the run ended: stop waiting
	defer stop()
	var b [1]byte
	n, err := c.Read(b[:])
	waited := time.Since(start)
	if n > 0 {
		w.c.fail("idle, the server sent %d bytes", n)
		return
	}
	w.judgeClose(ctx, err, waited, lim.IdleTimeout, "IdleTimeout", "idle")
}

// judgeClose checks the end of a connection the server must close once
// limit (the field called name) has passed: err ended the wait for it
// after waited; what says which client it was, for the failure.
func (w *client) judgeClose(ctx context.Context, err error, waited, limit time.Duration, name, what string) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		// The run ended first.
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.c.fail("%s and still open after %v (%s %v)", what, waited.Round(time.Millisecond), name, limit)
	case waited < limit*9/10:
		w.c.fail("%s, closed (%v) after %v, before %s %v", what, err, waited.Round(time.Millisecond), name, limit)
	default:
		w.c.droppedAfter(waited)
	}
}

// vanish connects and closes at once, half of the time with a reset
// (with TLS, before any handshake: a failed one for the server).
//
// One client makes at most one such connection a millisecond: a
// population of clients that come and go, not a connection flood (which,
// against a TLS Loop under -race on 2 CPUs, made 4,000 handshake
// goroutines a second and starved the well-behaved clients' handshakes
// past their timeout).
func (w *client) vanish(ctx context.Context) {
	next := time.Now().Add(time.Millisecond)
	defer func() {
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}()
	c, err := w.dial()
	if err != nil {
		w.c.fail("dial: %v", err)
		return
	}
	if w.cfg.TLS != nil {
		w.c.badTLS.Add(1)
	}
	if w.rng.IntN(2) == 0 {
		c.SetLinger(0)
	}
	c.Close()
}

// stall: connects and stops mid-handshake: before its ClientHello, after
// half of it, or after all of it without answering the server. The
// server's TLSHandshakeTimeout must close it: not before it (within 10%),
// and within TLSHandshakeTimeout + LingerTimeout + 5 s.
func (w *client) stall(ctx context.Context) {
	hello, err := clientHello(w.tlsConfig())
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	// The clock starts before the dial: the server cannot accept, and
	// start its handshake timer, any earlier (after the dial returns,
	// this goroutine can wait to run longer than the tolerance).
	start := time.Now()
	c, err := w.dial()
	if err != nil {
		w.c.fail("dial: %v", err)
		return
	}
	defer c.Close()
	w.c.badTLS.Add(1)
	switch w.rng.IntN(3) {
	case 0:
		hello = nil
	case 1:
		hello = hello[:len(hello)/2]
	}
	c.SetWriteDeadline(start.Add(opTimeout))
	if _, err := c.Write(hello); err != nil {
		w.c.fail("writing %d bytes of a ClientHello: %v", len(hello), err)
		return
	}
	lim := w.cfg.Limits
	bound := lim.HandshakeTimeout + lim.LingerTimeout + 5*time.Second
	c.SetReadDeadline(start.Add(bound))
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) }) // the run ended: stop waiting
	defer stop()
	_, err = io.Copy(io.Discard, c) // the server's first flight, if any, then the close
	waited := time.Since(start)
	w.judgeClose(ctx, err, waited, lim.HandshakeTimeout, "TLSHandshakeTimeout",
		fmt.Sprintf("stalled in the handshake (%d bytes of ClientHello)", len(hello)))
}

// badHello sends an HTTP request, or random bytes and a half-close,
// instead of a ClientHello. The server must close the connection within
// 5 s, with an alert or without.
func (w *client) badHello(context.Context) {
	c, err := w.dial()
	if err != nil {
		w.c.fail("dial: %v", err)
		return
	}
	defer c.Close()
	w.c.badTLS.Add(1)
	const closeBound = 5 * time.Second
	c.SetDeadline(time.Now().Add(opTimeout))
	http := w.rng.IntN(2) == 0
	if http {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			w.c.fail("writing an HTTP request: %v", err)
			return
		}
	} else {
		off := w.rng.IntN(len(pool) - 8192)
		if _, err := c.Write(pool[off : off+1+w.rng.IntN(8191)]); err != nil {
			w.c.fail("writing random bytes: %v", err)
			return
		}
		c.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(closeBound))
	_, err = io.Copy(io.Discard, c)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.c.fail("not closed %v after a bad ClientHello (HTTP: %v)", closeBound, http)
		return
	case err == nil:
		w.c.eofs.Add(1)
	default:
		w.c.resets.Add(1)
	}
	w.c.dropped.Add(1)
}

// resume: connection after connection, each with a round trip of 1 to 4
// requests, closed with close_notify; the worker keeps its sessions
// (ClientSessionCache), and every connection after its first must resume
// one. Half the workers speak TLS 1.2, half TLS 1.3.
func (w *client) resume(ctx context.Context) {
	if w.sessions == nil {
		w.sessions = tls.NewLRUClientSessionCache(4)
		w.version = tls.VersionTLS13
		if w.rng.IntN(2) == 0 {
			w.version = tls.VersionTLS12
		}
	}
	cfg := w.cfg.TLS.Clone()
	cfg.ClientSessionCache, cfg.MinVersion, cfg.MaxVersion = w.sessions, w.version, w.version
	c, _, err := w.open(nil, cfg)
	if err != nil {
		w.c.fail("%v", err)
		return
	}
	defer c.Close()
	w.conns++
	if c.(*tls.Conn).ConnectionState().DidResume {
		w.c.resumed.Add(1)
	} else if w.conns > 1 {
		w.c.fail("connection %d of a client with a session cache (%s) did not resume a session", w.conns, tls.VersionName(w.version))
		return
	}
	if err := w.exchangeSome(c, 4); err != nil {
		w.c.fail("%v", err)
	}
}

// runClients is the client role: it runs cfg.Mix against cfg.Addr for
// cfg.Time (each client finishes the connection it is on), then writes a
// clientResult as one "result {json}" line to out. Errors of single
// clients go to log; it returns an error only if it could not run.
func runClients(cfg clientConfig, out, log io.Writer) error {
	if cfg.Addr == "" {
		return errors.New("-addr is required")
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Time)
	defer cancel()
	var seq atomic.Uint64
	var srcs atomic.Uint32
	res := clientResult{Kinds: make(map[string]*tally)}
	var wg sync.WaitGroup
	var all []*counts
	for ki, k := range kinds {
		if cfg.TLS == nil && tlsOnly(k) {
			continue
		}
		cs := &counts{kind: k, log: log}
		all = append(all, cs)
		for i := range cfg.Mix[k] {
			w := &client{cfg: cfg, c: cs, seq: &seq, srcs: &srcs,
				rng: rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(ki<<16|i)))}
			var f func(context.Context)
			switch k {
			case kindPipeline:
				f = w.pipeline
			case kindSlow:
				f = w.slow
			case kindHalfClose:
				f = w.halfClose
			case kindNever:
				f = w.never
			case kindReset:
				f = w.reset
			case kindGarbage:
				f = w.garbage
			case kindIdle:
				f = w.idle
			case kindVanish:
				f = w.vanish
			case kindStall:
				f = w.stall
			case kindBadHello:
				f = w.badHello
			case kindResume:
				f = w.resume
			}
			wg.Go(func() {
				for ctx.Err() == nil {
					f(ctx)
				}
			})
		}
	}
	wg.Wait()
	for _, cs := range all {
		res.Kinds[cs.kind] = cs.tally()
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "result %s\n", b)
	return err
}
