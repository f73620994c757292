package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TB is what the PKI asks of its caller when a step fails: a *testing.T or *testing.B, or
// a benchmark program's own (build/benchuplink).
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// PKI is a throwaway certificate authority for TLS tests.
type PKI struct {
	Dir    string
	CAFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
	t      TB
	// CRLFile is the CA's certificate revocation list (PEM), written by Revoke.
	CRLFile string
	revoked []x509.RevocationListEntry
}

// NewPKI makes a CA under dir.
func NewPKI(t TB, dir string) *PKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dock test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &PKI{Dir: dir, CAFile: filepath.Join(dir, "ca.pem"), ca: ca, caKey: key, serial: 1, t: t}
	writePEM(t, p.CAFile, "CERTIFICATE", der)
	return p
}

// Issue makes a certificate for cn (a client identity, or with server true a server on
// 127.0.0.1 and on ips) and returns its certificate and key files.
func (p *PKI) Issue(cn string, server bool, ips ...net.IP) (certFile, keyFile string) {
	p.t.Helper()
	p.serial++
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = append([]net.IP{net.ParseIP("127.0.0.1")}, ips...)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(p.Dir, cn+".pem"), filepath.Join(p.Dir, cn+".key")
	writePEM(p.t, certFile, "CERTIFICATE", der)
	writePEM(p.t, keyFile, "EC PRIVATE KEY", kb)
	// A private key is its owner's alone, as the dock agent insists (secret.ReadFile).
	if err := os.Chmod(keyFile, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return certFile, keyFile
}

// Revoke adds the certificate in certFile to the CA's revocation list and rewrites the
// list (CRLFile, PEM), which a broker started with it (StartTLS, WithCRL) then enforces.
func (p *PKI) Revoke(certFile string) string {
	p.t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		p.t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		p.t.Fatalf("revoke %s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		p.t.Fatalf("revoke %s: %v", certFile, err)
	}
	p.revoked = append(p.revoked, x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	return p.WriteCRL()
}

// WriteCRL writes the CA's current revocation list (possibly empty) to CRLFile.
func (p *PKI) WriteCRL() string {
	p.t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(int64(len(p.revoked) + 1)), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: p.revoked,
	}, p.ca, p.caKey)
	if err != nil {
		p.t.Fatalf("crl: %v", err)
	}
	p.CRLFile = filepath.Join(p.Dir, "ca.crl")
	writePEM(p.t, p.CRLFile, "X509 CRL", der)
	return p.CRLFile
}

func writePEM(t TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
