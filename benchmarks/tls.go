//go:build linux

package benchmarks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"time"
)

// A TLSServer is a Server that speaks TLS. Its certificate is generated
// when it starts (selfSigned): a client trusts it by taking it as its only
// root (ClientTLSConfig), so nothing is read from or written to a file and
// no client skips verification. Serve prints it, after the address, for a
// client in another process.
type TLSServer interface {
	Server
	// Certificate is the server's self-signed certificate, DER.
	Certificate() []byte
}

// tlsHandshakeTimeout bounds a server's TLS handshake, as netcore's Server
// and Loop bound it by default.
const tlsHandshakeTimeout = 10 * time.Second

// tlsCertName is the name the certificate is for, besides 127.0.0.1 and
// ::1: what a client may use as its ServerName.
const tlsCertName = "localhost"

// selfSigned generates an ECDSA P-256 key and a certificate for it, signed
// by itself, for 127.0.0.1, ::1 and localhost, valid from an hour ago for
// a day; it returns a server configuration serving it (crypto/tls's
// defaults otherwise: TLS 1.3 with a client that offers it) and the
// certificate's DER.
func selfSigned() (*tls.Config, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "netcore echo benchmark"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{tlsCertName},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return cfg, der, nil
}

// ClientTLSConfig is a client's configuration for a TLSServer whose
// certificate is cert (DER): that certificate is its only root, so the
// handshake verifies the server as any client would, and the ServerName is
// the server's IP address, which the certificate names.
func ClientTLSConfig(cert []byte, serverAddr string) (*tls.Config, error) {
	c, err := x509.ParseCertificate(cert)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(serverAddr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		return nil, errors.New("ClientTLSConfig: the server's address has no host")
	}
	roots := x509.NewCertPool()
	roots.AddCert(c)
	return &tls.Config{RootCAs: roots, ServerName: host}, nil
}
