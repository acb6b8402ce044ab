//go:build linux

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// TLS, named and behaving as redis-server's (redis.conf, "TLS/SSL"):
// -tls-port serves TLS on -addr's host, beside plain TCP or, with -port 0,
// instead of it; -tls-cert-file and -tls-key-file are the server's
// certificate and key; -tls-auth-clients (yes, the default, as Redis's; no;
// optional) asks clients for a certificate signed by -tls-ca-cert-file;
// -tls-protocols lists the versions taken ("TLSv1.2 TLSv1.3" by default).
// In loop mode the TLS listener is served by Loop.ServeTLS on the same
// Loop as the others; in server mode through tls.NewListener, with the
// handshake bounded as the Loop bounds it (10 s).

// tlsFlags are the TLS flags as given.
type tlsFlags struct {
	certFile, keyFile, caFile string
	authClients               string // yes, no or optional
	protocols                 string // "TLSv1.2 TLSv1.3"
}

// defaultTLSProtocols is redis-server's default tls-protocols.
const defaultTLSProtocols = "TLSv1.2 TLSv1.3"

// tlsVersions are the names tls-protocols takes, in order.
var tlsVersions = []struct {
	name string
	v    uint16
}{
	{"TLSv1", tls.VersionTLS10},
	{"TLSv1.1", tls.VersionTLS11},
	{"TLSv1.2", tls.VersionTLS12},
	{"TLSv1.3", tls.VersionTLS13},
}

// setup is the tls.Config to serve TLS with, if serving (-tls-port is
// set), and nil otherwise; it refuses TLS flags that would not be used.
func (f tlsFlags) setup(serving bool) (*tls.Config, error) {
	if serving {
		return f.config()
	}
	if f != (tlsFlags{authClients: "yes", protocols: defaultTLSProtocols}) {
		return nil, errors.New("TLS flags given without -tls-port: nothing would serve TLS")
	}
	return nil, nil
}

// config builds the server's tls.Config, or says which flag is wrong,
// quoting it.
func (f tlsFlags) config() (*tls.Config, error) {
	if f.certFile == "" || f.keyFile == "" {
		return nil, errors.New("-tls-port needs -tls-cert-file and -tls-key-file (the server's certificate and its key, PEM)")
	}
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert-file %q, -tls-key-file %q: %w", f.certFile, f.keyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	switch strings.ToLower(f.authClients) {
	case "yes":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case "optional":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case "no":
		cfg.ClientAuth = tls.NoClientCert
	default:
		return nil, fmt.Errorf("-tls-auth-clients %q: must be yes, no or optional", f.authClients)
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca-cert-file %q: %w", f.caFile, err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca-cert-file %q: no PEM certificate in it", f.caFile)
		}
	} else if cfg.ClientAuth != tls.NoClientCert {
		return nil, fmt.Errorf("-tls-auth-clients %s needs -tls-ca-cert-file (the authority that signs client certificates), as redis-server does; or -tls-auth-clients no", f.authClients)
	}
	if cfg.MinVersion, cfg.MaxVersion, err = parseTLSProtocols(f.protocols); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseTLSProtocols reads a -tls-protocols list, names separated by
// spaces, case-insensitive as in redis-server. crypto/tls takes a range of
// versions, not a set, so the list must not leave one out in between.
func parseTLSProtocols(s string) (lowest, highest uint16, err error) {
	var take [4]bool
	names := strings.Fields(s)
	if len(names) == 0 {
		return 0, 0, fmt.Errorf("-tls-protocols %q: no protocol; use TLSv1, TLSv1.1, TLSv1.2 and TLSv1.3, as redis-server", s)
	}
	for _, n := range names {
		i := 0
		for i < len(tlsVersions) && !strings.EqualFold(n, tlsVersions[i].name) {
			i++
		}
		if i == len(tlsVersions) {
			return 0, 0, fmt.Errorf("-tls-protocols %q: unknown protocol %q; use TLSv1, TLSv1.1, TLSv1.2 and TLSv1.3, as redis-server", s, n)
		}
		take[i] = true
	}
	first, last := -1, -1
	for i, ok := range take {
		if ok {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	for i := first; i <= last; i++ {
		if !take[i] {
			return 0, 0, fmt.Errorf("-tls-protocols %q: Go's crypto/tls takes a range of versions, and %s is missing in between", s, tlsVersions[i].name)
		}
	}
	return tlsVersions[first].v, tlsVersions[last].v, nil
}

// listenAddrs works out the plain TCP and TLS addresses from -addr, -port
// and -tls-port, as redis-server does from bind, port and tls-port: -port
// (unless -1, not given) replaces -addr's port, and 0 turns plain TCP off;
// -tls-port, unless 0, is a port on -addr's host for TLS.
func listenAddrs(addr string, port, tlsPort int) (plain, tlsAddr string, err error) {
	if port < -1 || port > 65535 {
		return "", "", fmt.Errorf("-port %d: not a port (0 turns plain TCP off)", port)
	}
	if tlsPort < 0 || tlsPort > 65535 {
		return "", "", fmt.Errorf("-tls-port %d: not a port (0, the default, for no TLS)", tlsPort)
	}
	if addr == "" {
		switch {
		case port > 0:
			return "", "", fmt.Errorf("-port %d needs a host, and -addr is empty", port)
		case tlsPort > 0:
			return "", "", fmt.Errorf("-tls-port %d listens on -addr's host, and -addr is empty (to serve TLS alone, use -port 0)", tlsPort)
		}
		return "", "", nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("-addr %q: %w", addr, err)
	}
	plain = addr
	if port >= 0 {
		plain = ""
		if port > 0 {
			plain = net.JoinHostPort(host, strconv.Itoa(port))
		}
	}
	if tlsPort > 0 {
		tlsAddr = net.JoinHostPort(host, strconv.Itoa(tlsPort))
	}
	return plain, tlsAddr, nil
}
