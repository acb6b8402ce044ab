package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throw-away certificate authority with a server certificate for
// localhost, 127.0.0.1 and ::1 (and the extra names NewPKI was given) and a
// client certificate, all ECDSA P-256, valid for an hour around now.
type PKI struct {
	Roots  *x509.CertPool    // trusts the CA
	Server tls.Certificate   // for the server names
	Client tls.Certificate   // for client authentication, CN "netcore test client"
	CA     *x509.Certificate // the authority itself
	caKey  *ecdsa.PrivateKey
}

// NewPKI makes a PKI whose server certificate also names dnsNames.
func NewPKI(t testing.TB, dnsNames ...string) *PKI {
	t.Helper()
	p := &PKI{Roots: x509.NewCertPool()}
	var err error
	if p.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "netcore test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	if p.CA, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	p.Roots.AddCert(p.CA)
	p.Server = p.Issue(t, "netcore test server", x509.ExtKeyUsageServerAuth, append([]string{"localhost"}, dnsNames...)...)
	p.Client = p.Issue(t, "netcore test client", x509.ExtKeyUsageClientAuth)
	return p
}

// Issue makes a certificate signed by the CA for commonName and dnsNames
// (and the loopback addresses, for a server certificate).
func (p *PKI) Issue(t testing.TB, commonName string, usage x509.ExtKeyUsage, dnsNames ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// ServerConfig is a server configuration with the server certificate.
func (p *PKI) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.Server}}
}

// ClientConfig is a client configuration that trusts the CA and expects
// the server name "localhost".
func (p *PKI) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.Roots, ServerName: "localhost"}
}

// WriteFiles writes the CA's certificate and the server's and client's
// certificates and keys as PEM files into dir (the names redis-server and
// openssl take): ca.crt, server.crt, server.key, client.crt, client.key.
func (p *PKI) WriteFiles(t testing.TB, dir string) {
	t.Helper()
	write := func(name, typ string, der []byte) {
		b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", "CERTIFICATE", p.CA.Raw)
	for _, c := range []struct {
		name string
		cert tls.Certificate
	}{{"server", p.Server}, {"client", p.Client}} {
		write(c.name+".crt", "CERTIFICATE", c.cert.Certificate[0])
		key, err := x509.MarshalPKCS8PrivateKey(c.cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		write(c.name+".key", "PRIVATE KEY", key)
	}
}
