// Package netcore is a Linux TCP core written directly on the socket system
// calls: byte-order conversion, a Sockaddr value type that stands for
// struct sockaddr_in and struct sockaddr_in6, name resolution, and (on Linux)
// listeners, connections and a server built on socket, bind, listen, accept4,
// connect, read and write.
//
// The layers, bottom up:
//
//   - Byte order: Htons, Ntohs, Htonl, Ntohl, Htonll, Ntohll.
//   - Addresses: Sockaddr and its conversions to and from netip.AddrPort,
//     *net.TCPAddr, unix.Sockaddr, text, and the kernel's raw bytes.
//   - Resolution: Resolve and ResolveHostPort, the getaddrinfo step.
//   - Framing: FrameCodec and FrameReader, length-prefixed frames over a
//     byte slice or an io.Reader, for the protocol on top.
//
// Byte order, Sockaddr's text, netip and TCPAddr conversions, resolution and
// framing work on every platform. Everything that touches the kernel (unix.Sockaddr,
// the raw byte layout, which is Linux's, and sockets) is Linux only; on other
// platforms those entry points return an error that says so.
package netcore
