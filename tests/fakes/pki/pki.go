// Package pki makes the test world's keys and certificates and signs and
// verifies RS256 JWTs. Standard library only, so the fakes build offline.
//
// Layout of a PKI directory made by Init:
//
//	ca.crt, ca.key            test CA (trust anchor for every TLS endpoint)
//	server.crt, server.key    serving cert for localhost, 127.0.0.1, ::1
//	admin.crt, admin.key      client cert CN=admin O=system:masters
//	idp.key, idp.pub          Entra-like identity provider signing key (access tokens)
//	sa.key, sa.pub            Kubernetes service-account issuer key (projected tokens)
//	other.key, other.pub      an unrelated key, for "signed by another key" tests
package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// GenerateKey makes a 2048-bit RSA key and writes it (PKCS#1 PEM) to path,
// and its public half (PKIX PEM) to the same path with ".key" replaced by ".pub".
func GenerateKey(path string) (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if err := writePEM(path, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), 0o600); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := writePEM(strings.TrimSuffix(path, ".key")+".pub", "PUBLIC KEY", pub, 0o644); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadKey reads an RSA private key in PKCS#1 or PKCS#8 PEM.
func LoadKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", path)
	}
	return rk, nil
}

// LoadPublicKey reads an RSA public key in PKIX PEM.
func LoadPublicKey(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", path)
	}
	return rk, nil
}

// CA is a loaded certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// LoadCA reads ca.crt and ca.key from dir.
func LoadCA(dir string) (*CA, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("ca.crt: no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	k, err := LoadKey(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c, Key: k}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// NewCA makes a self-signed CA named cn and writes ca.crt/ca.key (or
// name.crt/name.key when name is not "ca") in dir.
func NewCA(dir, name, cn string) (*CA, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	c, _ := x509.ParseCertificate(der)
	if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	if err := writePEM(filepath.Join(dir, name+".key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), 0o600); err != nil {
		return nil, err
	}
	return &CA{Cert: c, Key: k}, nil
}

// Issue signs a leaf certificate for cn (with organizations orgs) and writes
// name.crt/name.key in dir. hosts become DNS or IP SANs; a leaf with hosts is a
// server certificate, one without is a client certificate.
func (ca *CA) Issue(dir, name, cn string, orgs, hosts []string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if len(hosts) > 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, name+".key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), 0o600)
}

// Init fills dir with the test world's PKI (see the package comment).
// It is idempotent: an existing ca.crt means the directory is already made.
func Init(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err == nil {
		return nil
	}
	ca, err := NewCA(dir, "ca", "pgtoken-rotator test CA")
	if err != nil {
		return err
	}
	if _, err := NewCA(dir, "wrong-ca", "an unrelated CA"); err != nil {
		return err
	}
	if err := ca.Issue(dir, "server", "localhost", nil, []string{"localhost", "127.0.0.1", "::1"}); err != nil {
		return err
	}
	if err := ca.Issue(dir, "admin", "admin", []string{"system:masters"}, nil); err != nil {
		return err
	}
	for _, n := range []string{"idp", "sa", "other"} {
		if _, err := GenerateKey(filepath.Join(dir, n+".key")); err != nil {
			return err
		}
	}
	return nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// KeyID is the key id the fakes put in JWT headers and JWKS: the base64url
// SHA-256 of the public key's DER, as kube-apiserver derives its own.
func KeyID(pub *rsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWKS renders the public keys as a JSON Web Key Set.
func JWKS(pubs ...*rsa.PublicKey) []byte {
	type jwk struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{}
	for _, p := range pubs {
		set.Keys = append(set.Keys, jwk{"RSA", "sig", "RS256", KeyID(p),
			base64.RawURLEncoding.EncodeToString(p.N.Bytes()),
			base64.RawURLEncoding.EncodeToString(big.NewInt(int64(p.E)).Bytes())})
	}
	b, _ := json.Marshal(set)
	return b
}

// Sign returns an RS256 JWT with the given claims, kid set from the key.
func Sign(key *rsa.PrivateKey, claims map[string]any) (string, error) {
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": KeyID(&key.PublicKey)})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Verify checks an RS256 JWT's signature against any of pubs and returns its
// claims. It checks no claim: callers decide what exp/aud/iss must be.
func Verify(token string, pubs ...*rsa.PublicKey) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT: want three dot-separated parts")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("JWT header: %v", err)
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, fmt.Errorf("JWT header: %v", err)
	}
	if hdr.Alg != "RS256" {
		return nil, fmt.Errorf("JWT alg %q: only RS256 is accepted", hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("JWT signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	ok := false
	for _, p := range pubs {
		if rsa.VerifyPKCS1v15(p, crypto.SHA256, sum[:], sig) == nil {
			ok = true
			break
		}
	}
	if !ok {
		return nil, errors.New("JWT signature does not verify with any trusted key")
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("JWT claims: %v", err)
	}
	var claims map[string]any
	d := json.NewDecoder(strings.NewReader(string(cb)))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil {
		return nil, fmt.Errorf("JWT claims: %v", err)
	}
	return claims, nil
}
