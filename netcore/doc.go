// Package netcore is a Linux TCP core written directly on the socket system
// calls (socket, bind, listen, accept4, connect, read, write, shutdown,
// close), through golang.org/x/sys/unix. It drops into code written for
// Go's net package: a *Listener is a net.Listener, a *Conn a net.Conn, and
// net/http, crypto/tls and protocol code run on them unchanged.
//
// The layers, bottom up:
//
//   - Byte order: Htons, Ntohs, Htonl, Ntohl, Htonll, Ntohll, as in C.
//   - Addresses: Sockaddr, a comparable value standing for struct
//     sockaddr_in and struct sockaddr_in6, and its conversions to and from
//     netip.AddrPort, *net.TCPAddr, unix.Sockaddr, text, and the kernel's
//     raw bytes. Errors are *ParseError and quote the input.
//   - Resolution: Resolve and ResolveHostPort, the getaddrinfo step.
//     Errors are *ResolveError and quote the input.
//   - Sockets: Listen and ListenConfig make a *Listener; Dial and Dialer
//     make a *Conn. Every socket is non-blocking and close-on-exec and is
//     driven by Go's runtime poller, so deadlines work, Close wakes blocked
//     calls and an idle connection costs no thread; ListenConfig.Blocking
//     and Dialer.Blocking select the fast path instead, where calls block
//     in the kernel on their own thread. Options that must be set before
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
//   - Framing: FrameCodec and FrameReader, length-prefixed frames over a
//     byte slice or an io.Reader, for the protocol on top.
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
