package netcore_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// A Dialer with options: a source address, a timeout for the whole dial,
// and keep-alive probes.
func ExampleDialer() {
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	d := netcore.Dialer{
		Timeout:   5 * time.Second,
		LocalAddr: netcore.MustParseSockaddr("127.0.0.1:0"), // port 0: chosen at connect time
		KeepAlive: 30 * time.Second,
	}
	c, err := d.DialContext(context.Background(), "tcp4", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	s, err := l.AcceptConn()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	fmt.Println(c.LocalSockaddr() == s.RemoteSockaddr(), c.RemoteSockaddr() == s.LocalSockaddr())
	// Output: true true
}

// A ListenConfig with options set between socket(2) and bind(2): a small
// backlog, SO_REUSEPORT (two listeners on one port) and the raw socket
// for anything netcore does not wrap.
func ExampleListenConfig() {
	var sawSocket bool
	lc := netcore.ListenConfig{
		Backlog:   128,
		ReusePort: true,
		Control: func(network, address string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { sawSocket = fd > 2 })
		},
	}
	ctx := context.Background()
	l1, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l1.Close()
	l2, err := lc.Listen(ctx, "tcp4", l1.Addr().String()) // the same port
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l2.Close()
	fmt.Println(sawSocket, l1.Sockaddr() == l2.Sockaddr())
	// Output: true true
}

// net/http over netcore: an http.Server serving on a netcore Listener and
// an http.Client whose transport dials through netcore. Keep-alive works
// as usual.
func Example_http() {
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path[1:])
	})}
	go hs.Serve(l)
	defer hs.Close()

	d := &netcore.Dialer{Timeout: 5 * time.Second}
	client := &http.Client{
		Transport: &http.Transport{DialContext: d.DialNetConn},
		Timeout:   5 * time.Second,
	}
	for _, who := range []string{"alice", "bob"} {
		resp, err := client.Get("http://" + l.Addr().String() + "/" + who)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// hello alice
	// hello bob
}

// TLS both ways: a Server with a TLSConfig, and a client dialing with
// DialTLSContext. The handler reaches the socket beneath the TLS
// connection with AsConn. (The certificate here is made on the spot and
// trusted by the client; use real ones.)
func ExampleDialer_DialTLSContext() {
	cert, roots, err := exampleCertificate()
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &netcore.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
			if nc, ok := netcore.AsConn(c); ok {
				nc.SetKeepAlivePeriod(time.Minute) // a socket option, under TLS
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s, securely\n", strings.TrimSpace(line))
		}),
	}
	go srv.Serve(l)
	defer srv.Close()

	d := &netcore.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialTLSContext(context.Background(), "tcp4", l.Addr().String(), &tls.Config{RootCAs: roots})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
	reply, err := bufio.NewReader(c).ReadString('\n')
	fmt.Print(reply, tls.VersionName(c.ConnectionState().Version), " ", err, "\n")
	// Output:
	// hello, securely
	// TLS 1.3 <nil>
}

// exampleCertificate makes a self-signed certificate for 127.0.0.1 and the
// pool that trusts it.
func exampleCertificate() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots, nil
}

// A line-per-request server in the shape Shutdown needs: each handler
// waits for the next request inside Idle, so Shutdown ends idle clients at
// once, while a request already being served is finished.
func ExampleServer_Shutdown() {
	srv := &netcore.Server{
		Addr: "127.0.0.1:0",
		Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
			br := bufio.NewReader(c)
			for {
				err := netcore.Idle(ctx, func() error { _, err := br.Peek(1); return err })
				if err != nil {
					fmt.Println("handler:", err)
					return
				}
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				fmt.Fprint(c, strings.ToUpper(line))
			}
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := srv.BoundAddr(ctx) // the port the kernel chose
	if err != nil {
		fmt.Println(err)
		return
	}

	c, err := netcore.Dial("tcp4", addr.String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Fprintln(c, "one request")
	reply, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(reply) // the client now stays connected, idle

	fmt.Println("Shutdown:", srv.Shutdown(ctx)) // does not wait for ctx's deadline
	fmt.Println("Serve:", <-served)
	// Output:
	// ONE REQUEST
	// handler: netcore: server closed
	// Shutdown: <nil>
	// Serve: netcore: server closed
}
