//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// runLoop is -mode loop: a netcore.Loop, a few event loops (one per
// GOMAXPROCS unless -loops says otherwise) serving every connection
// through loopHandler.
//
// A connection's unconsumed input is bounded by -max-query (the Loop's
// MaxInput). Its output is paced by the Loop's high watermark
// (OutputHighWater, 256 KiB): loopHandler takes no further command while
// more output than that is unwritten, so it adds at most one batch of
// replies (Serve stops after replyBatch bytes, 64 KiB, plus the reply that
// crossed it, at most a value of -max-bulk bytes and its header) above
// the watermark. MaxOutput is that sum, OutputHighWater + replyBatch +
// -max-bulk + maxReplyHeader: a bound that serving never meets (and no
// longer the size of -max-query, which a pipeline of large replies could
// pass however large it was). A client that sends commands and never
// reads their replies holds a connection's memory at that bound, and
// Redis's client-output-buffer-limit for normal clients is none either.
//
// A TLS listener is served by Loop.ServeTLS on the same Loop: its
// connections' handshakes run on goroutines of their own, then the loops
// decrypt and encrypt, and loopHandler sees plaintext as on the others.
func runLoop(ctx context.Context, addr string, store *Store, cfg config, ready func([]endpoint)) error {
	cfg.blocking = false // a Loop's sockets are non-blocking
	eps, err := listenAll(ctx, addr, cfg)
	if err != nil {
		return err
	}
	lp := &netcore.Loop{
		Handler:             &loopHandler{store: store, maxBulk: cfg.maxBulk, maxQuery: cfg.maxQuery},
		Loops:               cfg.loops,
		SpinWait:            cfg.spinWait,
		Backend:             cfg.backend,
		MaxInput:            cfg.maxQuery,
		TLSHandshakeTimeout: cfg.tlsHandshakeTimeout,
		OutputHighWater:     netcore.DefaultOutputHighWater,
		MaxOutput:           netcore.DefaultOutputHighWater + replyBatch + cfg.maxBulk + maxReplyHeader,
		Logger:              cfg.logger,
	}
	served := make(chan error, len(eps))
	for _, e := range eps {
		if e.tls {
			go func() { served <- lp.ServeTLS(e.l, cfg.tls) }()
		} else {
			go func() { served <- lp.Serve(e.l) }()
		}
	}
	ready(eps)
	select {
	case err := <-served:
		lp.Close()
		for range len(eps) - 1 {
			<-served
		}
		return err
	case <-ctx.Done():
	}
	// Shutdown closes idle connections at once; one with replies still
	// unwritten gets this grace period to take them.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = lp.Shutdown(sctx)
	for range eps {
		if serr := <-served; !errors.Is(serr, netcore.ErrLoopClosed) {
			return serr
		}
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// loopHandler serves RESP on a Loop's connections. Its callbacks run on
// the connection's event loop and never block.
type loopHandler struct {
	store    *Store
	maxBulk  int
	maxQuery int
}

// loopSession is one connection's state: its Session and the slice its
// replies are built in (kept between calls only while it is at most
// keptReply bytes: see keepReply).
type loopSession struct {
	sess    *Session
	out     []byte
	closing bool // after QUIT or a protocol error: the rest of the input is ignored
}

// OnOpen gives the connection its Session.
func (h *loopHandler) OnOpen(c *netcore.LoopConn) {
	c.SetUserData(&loopSession{sess: h.store.NewSession(h.maxBulk)})
}

// OnData runs the complete commands in the connection's input: Serve
// parses straight from the loop's buffer (no copy), the consumed bytes are
// discarded, and the replies are copied from s.out to the output buffer,
// which the loop writes once at the end of this iteration. Before each
// batch of commands it asks c.OutputFull: while the output is above the
// high watermark it stops, leaving the rest of the input unconsumed, and
// the loop calls OnData again once the output has drained to the low
// watermark. An incomplete command stays in the input until the rest
// arrives.
func (h *loopHandler) OnData(c *netcore.LoopConn) {
	s := c.UserData().(*loopSession)
	if s.closing {
		c.Discard(c.Buffered())
		return
	}
	defer func() { s.out = keepReply(s.out) }()
	for {
		if c.OutputFull() {
			// Over the high watermark: the rest of the input waits, and
			// the loop calls OnData again once the output has drained.
			return
		}
		n, out, closeConn := s.sess.Serve(c.Peek(c.Buffered()), s.out[:0])
		s.out = out
		c.Discard(n)
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return // over MaxOutput: the loop closes the connection
			}
		}
		if closeConn {
			s.closing = true
			c.Discard(c.Buffered())
			c.Close() // after the replies are written
			return
		}
		if n == 0 {
			break
		}
	}
	if c.Buffered() >= h.maxQuery {
		// The input buffer is full with one incomplete command.
		s.closing = true
		c.Write(fmt.Appendf(s.out[:0], "-ERR Protocol error: a command over the query buffer limit of %d bytes\r\n", h.maxQuery))
		c.Discard(c.Buffered())
		c.Close()
	}
}

// OnEOF: the client has half-closed; every complete command it sent has
// been served, and the loop closes the connection once the replies are
// written.
func (h *loopHandler) OnEOF(c *netcore.LoopConn) {}

// OnClose lets the Session go.
func (h *loopHandler) OnClose(c *netcore.LoopConn, err error) { c.SetUserData(nil) }
