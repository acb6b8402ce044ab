package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// The TLS servers (loop-tls, server-tls) make a certificate of their own
// at start, self-signed, for 127.0.0.1, and print it (DER, base64) on the
// line after their address; the driver hands it to the client process
// (-cert), whose clients trust it and nothing else, and verify it on
// every handshake.

// newCertificate makes a self-signed ECDSA P-256 certificate for
// 127.0.0.1, valid for a day around now, and returns it with its DER in
// base64.
func newCertificate() (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "netcore soak server"},
		NotBefore:             time.Now().Add(-12 * time.Hour),
		NotAfter:              time.Now().Add(12 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return cert, base64.StdEncoding.EncodeToString(der), nil
}

// clientTLSConfig is the clients' configuration for a server whose
// certificate is cert (base64 DER): it trusts that certificate only and
// verifies it for 127.0.0.1.
func clientTLSConfig(cert string) (*tls.Config, error) {
	der, err := base64.StdEncoding.DecodeString(cert)
	if err != nil {
		return nil, fmt.Errorf("-cert: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("-cert: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c)
	return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}, nil
}

// captureConn is a net.Conn that keeps what is written to it and fails
// every read: a tls.Client's Handshake over it writes a ClientHello and
// fails, leaving the ClientHello's bytes in b.
type captureConn struct {
	net.Conn // nil: only Read and Write are called
	b        []byte
}

var errCaptured = errors.New("captured")

func (c *captureConn) Write(p []byte) (int, error) { c.b = append(c.b, p...); return len(p), nil }
func (c *captureConn) Read([]byte) (int, error)    { return 0, errCaptured }
func (c *captureConn) Close() error                { return nil }
func (c *captureConn) SetDeadline(time.Time) error { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error {
	return nil
}
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }

// clientHello returns the bytes of a ClientHello that config makes.
func clientHello(config *tls.Config) ([]byte, error) {
	cc := &captureConn{}
	err := tls.Client(cc, config).Handshake()
	if !errors.Is(err, errCaptured) || len(cc.b) == 0 {
		return nil, fmt.Errorf("capturing a ClientHello: %v (%d bytes)", err, len(cc.b))
	}
	return cc.b, nil
}
