// Package netcore is a Linux TCP (and Unix stream socket) core written
// directly on the socket system calls (socket, bind, listen, accept4, connect, read, write, shutdown,
// close), through golang.org/x/sys/unix. It drops into code written for
// Go's net package: a *Listener is a net.Listener, a *Conn a net.Conn, and
// net/http, crypto/tls and protocol code run on them unchanged.
//
// The layers, bottom up:
//
//   - Byte order: Htons, Ntohs, Htonl, Ntohl, Htonll, Ntohll, as in C.
//   - Addresses: Sockaddr, a comparable value standing for struct
//     sockaddr_in, struct sockaddr_in6 and struct sockaddr_un, and its
//     conversions to and from netip.AddrPort, *net.TCPAddr, *net.UnixAddr,
//     unix.Sockaddr, text, and the kernel's raw bytes. Errors are
//     *ParseError and quote the input.
//   - Resolution: Resolve and ResolveHostPort, the getaddrinfo step.
//     Errors are *ResolveError and quote the input.
//   - Sockets: Listen and ListenConfig make a *Listener; Dial and Dialer
//     make a *Conn, over TCP ("tcp", "tcp4", "tcp6") or a Unix stream
//     socket ("unix": a path or an abstract "@name"). The transport
//     (transport_linux.go) is the one place that knows the difference: the
//     protocol socket(2) takes, and which options apply (TCP's and IP's
//     are skipped on a Unix socket). Every socket is non-blocking and close-on-exec and is
//     driven by Go's runtime poller, so deadlines work, Close wakes blocked
//     calls and an idle connection costs no thread; ListenConfig.Blocking
//     and Dialer.Blocking select the fast path instead, where calls block
//     in the kernel on their own thread. Inside, each socket is a
//     descriptor in one of those two I/O modes, and each kind of call
//     (read, write, writev, sendfile, splice, accept4) a value describing
//     the operation, which the mode runs with one retry loop; a new mode
//     runs the same values. Options that must be set before
//     bind or connect (SO_REUSEPORT, IPV6_V6ONLY, SO_BINDTODEVICE, the
//     source address) are fields of ListenConfig and Dialer; Conn has typed
//     setters for the others and SyscallConn for the rest. Errors are
//     *net.OpError around *os.SyscallError, as Go's net writes them, so
//     errors.Is finds the errno, net.ErrClosed and os.ErrDeadlineExceeded.
//   - The standard library: Dialer.DialNetConn has the signature
//     http.Transport.DialContext and other dialer hooks take;
//     Dialer.DialTLSContext dials with TLS; AsConn finds the *Conn beneath
//     a *tls.Conn, for socket options.
//   - Server: an accept loop over any net.Listener in the shape of
//     net/http.Server. Each connection's Handler runs on its own goroutine
//     with a context that Shutdown cancels; a handler that waits for each
//     request inside Idle is ended at once by Shutdown when its client is
//     idle, while one in the middle of a request finishes it. TLSConfig
//     adds TLS, MaxConns bounds the connections served at once,
//     IdleTimeout bounds idle reads, BoundAddr says which port
//     ListenAndServe bound. Accept errors that pass (EMFILE, a listener
//     deadline) make it back off, never stop; a panicking handler is
//     recovered and logged.
//   - Zero-copy and vectored I/O: Conn.ReadFrom moves bytes from a file
//     with sendfile(2) and from another Conn with splice(2), Conn.WriteTo
//     the other way, Conn.Writev writes many buffers in one writev(2); io.Copy
//     finds them.
//   - Event loop: Loop serves many connections on a few goroutines, each
//     locked to its thread and waiting in its own epoll instance, instead of
//     a goroutine per connection. Each loop accepts the connections it
//     serves: on the one listening socket, where a light load stays on the
//     first loops, or with ReusePort on a socket of its own. A LoopHandler is called on the loop with
//     each connection's buffered input (LoopConn.Peek, Next, Discard) and
//     answers with Write; output is bounded by watermarks (OutputFull tells
//     a handler to stop taking requests; the loop offers the rest of the
//     input again once the output drains) and a hard MaxOutput. Other
//     goroutines reach a connection through Send, Execute and Close; Hold
//     and Release keep it open for work in flight; AfterFunc and
//     SetDeadline set timers on one heap per loop. Bytes leave in the order
//     the calls that made them were made. Loop.Shutdown lets connections
//     finish; limits (MaxInput, MaxOutput, IdleTimeout) close a
//     connection with a *LimitError; EMFILE is met with a reserve
//     descriptor, not a crash.
//   - Framing: FrameCodec and FrameReader, length-prefixed frames over a
//     byte slice or an io.Reader, for the protocol on top; FrameHandler
//     runs such a protocol on a Loop, one call per frame, with reply frames
//     built in place (LoopConn.BeginFrame). FrameReader's memory grows with
//     the bytes that arrive, never with the length a peer claims.
//
// Byte order, Sockaddr's text, netip and TCPAddr conversions, resolution,
// framing and the Server (over a listener of Go's net package) work on every
// platform. Every other exported identifier exists everywhere too, with the
// same signature, so code written for netcore compiles everywhere (except
// SockaddrFromUnix and Sockaddr.Unix on Windows, whose signatures name
// golang.org/x/sys/unix); off Linux the entry points that need the kernel
// (Listen, Dial, ListenConfig.Listen, Dialer.DialContext and its
// relatives, the raw byte form) return an error matching ErrLinuxOnly.
package netcore
