//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/netcore-dev/netcore/examples/kv/kvproto"
	"github.com/netcore-dev/netcore/netcore"
)

// config is the server's settings besides its address.
type config struct {
	loops   int                 // event loops; 0 means GOMAXPROCS
	backend netcore.LoopBackend // Loop.Backend
	maxMsg  int                 // largest frame payload, either way
	grace   time.Duration       // Shutdown's timeout
	logger  *slog.Logger
}

// run serves store on addr until ctx is cancelled, then shuts down
// gracefully, giving requests in progress cfg.grace, and returns nil (or
// the error that stopped it). It calls ready with the bound address and
// the Loop (for its Stats) once connections are accepted.
//
// The Loop's limits follow from -max-msg: MaxInput is one whole frame
// (4+maxMsg bytes: the largest request fits, and memory grows only with
// bytes received); MaxOutput is the output high watermark plus one whole
// frame, because the FrameHandler takes no new request while the output is
// above the high watermark, so the largest reply (a get of the largest
// value) always fits and a client that never reads is cut off there.
func run(ctx context.Context, addr string, store *Store, cfg config, ready func(net.Addr, *netcore.Loop)) error {
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	codec, err := kvproto.NewCodec(cfg.maxMsg)
	if err != nil {
		return err
	}
	frame := codec.HeaderSize() + codec.MaxPayload()
	srv := &server{store: store, codec: codec}
	lp := &netcore.Loop{
		Handler: (&netcore.FrameHandler{
			Codec:        codec,
			OnOpen:       srv.onOpen,
			OnFrame:      srv.onFrame,
			OnFrameError: srv.onFrameError,
			OnClose:      srv.onClose,
		}).LoopHandler(),
		Loops:     cfg.loops,
		Backend:   cfg.backend,
		MaxInput:  frame,
		MaxOutput: netcore.DefaultOutputHighWater + frame,
		Logger:    cfg.logger,
	}
	l, err := netcore.Listen("tcp", addr)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- lp.Serve(l) }()
	ready(l.Addr(), lp)
	select {
	case err := <-served:
		lp.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.grace)
	defer cancel()
	err = lp.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, netcore.ErrLoopClosed) {
		return serr
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if err != nil {
		cfg.logger.Warn("kv: shutdown timeout reached; closed the connections left", "timeout", cfg.grace)
	}
	return nil
}

// server answers the frames of every connection. Its methods run on the
// connection's event loop.
type server struct {
	store *Store
	codec netcore.FrameCodec
}

// conn is a connection's state: the slice its requests are parsed into,
// reused from one request to the next.
type conn struct {
	args [][]byte
}

// keptArgs is the capacity of parsed strings a connection keeps between
// requests: get, set and del need 3; a request of thousands of strings
// (answered ERR) should not leave its slice behind.
const keptArgs = 16

func (s *server) onOpen(c *netcore.LoopConn) {
	c.SetUserData(&conn{args: make([][]byte, 0, 4)})
}

func (s *server) onClose(c *netcore.LoopConn, err error) { c.SetUserData(nil) }

// onFrame answers one request: it parses the payload in place (the strings
// point into the loop's input buffer), runs the command, and writes the
// reply frame straight into the connection's output, its length filled in
// at the end. A bad payload is answered ERR with ParseRequest's message.
func (s *server) onFrame(c *netcore.LoopConn, payload []byte) {
	st := c.UserData().(*conn)
	f, err := c.BeginFrame(s.codec)
	if err != nil {
		return // over MaxOutput: the loop closes the connection
	}
	args, err := kvproto.ParseRequest(st.args[:0], payload)
	if err != nil {
		c.Write(errReply(err.Error()))
	} else if err := s.store.Exec(c, args); err != nil {
		return // as above
	}
	// The strings point into the input buffer: forget them, also those
	// left beyond len by a failed parse.
	if cap(args) <= keptArgs {
		clear(args[:cap(args)])
		st.args = args[:0]
	} else {
		st.args = make([][]byte, 0, 4)
	}
	// The reply fits -max-msg: a value came in a set request of at most
	// -max-msg bytes, 15 more than get's reply of it, and error messages
	// are far shorter than MinMaxMsg. End fails only if the connection is
	// closing.
	f.End()
}

// onFrameError answers a frame whose header claims more than -max-msg
// with an ERR reply (frameErrorMessage); the FrameHandler then closes the
// connection once it is written.
func (s *server) onFrameError(c *netcore.LoopConn, err error) {
	s.reply(c, errReply(frameErrorMessage(err)))
}

// frameErrorMessage is the text of the ERR reply to a frame the codec
// refused: for a length over the limit, the length and the limit.
func frameErrorMessage(err error) string {
	var tooLarge *netcore.FrameTooLargeError
	if errors.As(err, &tooLarge) {
		return fmt.Sprintf("request of %d bytes is over the limit of %d (-max-msg); closing the connection",
			tooLarge.Length, tooLarge.Max)
	}
	return err.Error()
}

// reply writes payload to c as one frame.
func (s *server) reply(c *netcore.LoopConn, payload []byte) {
	f, err := c.BeginFrame(s.codec)
	if err != nil {
		return
	}
	c.Write(payload)
	f.End()
}

// errReply returns the payload of an ERR reply carrying msg.
func errReply(msg string) []byte {
	return kvproto.AppendReply(nil, kvproto.ERR, []byte(msg))
}
