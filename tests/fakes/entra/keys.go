package entra

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

// issuerKey is one signing key of an external issuer.
type issuerKey struct {
	kid string
	pub *rsa.PublicKey
}

// parseJWKS reads the RSA keys of a JSON Web Key Set (other key types are
// skipped: the fake verifies RS256 only).
func parseJWKS(b []byte) ([]issuerKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %v", err)
	}
	var keys []issuerKey
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		if err != nil {
			return nil, fmt.Errorf("JWKS key %q: n: %v", k.Kid, err)
		}
		e, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("JWKS key %q: bad e", k.Kid)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		keys = append(keys, issuerKey{kid: k.Kid, pub: pub})
	}
	return keys, nil
}

// keyCache holds the signing keys of the configured issuers. Keys from files
// are read when first needed; keys from URLs are fetched when first needed,
// again when older than keyCacheTTL, and again when a token names a kid the
// cache does not know (a rotated key), as Entra does.
type keyCache struct {
	client *http.Client // trusts the pki CA
	mu     sync.Mutex
	byIss  map[string]*cachedKeys
}

type cachedKeys struct {
	keys    []issuerKey
	fetched time.Time
}

const keyCacheTTL = 5 * time.Minute

func newKeyCache(client *http.Client) *keyCache {
	return &keyCache{client: client, byIss: map[string]*cachedKeys{}}
}

func (kc *keyCache) reset() {
	kc.mu.Lock()
	kc.byIss = map[string]*cachedKeys{}
	kc.mu.Unlock()
}

// keys returns the issuer's keys; refresh forces a new fetch for URL sources.
func (kc *keyCache) keys(ctx context.Context, is *IssuerConfig, refresh bool) ([]issuerKey, error) {
	kc.mu.Lock()
	c := kc.byIss[is.Issuer]
	kc.mu.Unlock()
	remote := is.JWKSURL != "" || is.OIDCDiscovery
	if c != nil && !(remote && (refresh || time.Since(c.fetched) > keyCacheTTL)) {
		return c.keys, nil
	}
	keys, err := kc.load(ctx, is)
	if err != nil {
		return nil, err
	}
	kc.mu.Lock()
	kc.byIss[is.Issuer] = &cachedKeys{keys: keys, fetched: time.Now()}
	kc.mu.Unlock()
	return keys, nil
}

func (kc *keyCache) load(ctx context.Context, is *IssuerConfig) ([]issuerKey, error) {
	switch {
	case is.PublicKeyFile != "":
		pub, err := pki.LoadPublicKey(is.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		// A PEM file publishes no kid: any kid in the token is accepted.
		return []issuerKey{{pub: pub}}, nil
	case is.JWKSFile != "":
		b, err := os.ReadFile(is.JWKSFile)
		if err != nil {
			return nil, err
		}
		return parseJWKS(b)
	}
	client, token, err := kc.clientFor(is)
	if err != nil {
		return nil, err
	}
	jwksURL := is.JWKSURL
	if is.OIDCDiscovery {
		b, err := fetch(ctx, client, token, strings.TrimSuffix(is.Issuer, "/")+"/.well-known/openid-configuration")
		if err != nil {
			return nil, err
		}
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("openid-configuration of %s: %v", is.Issuer, err)
		}
		if doc.Issuer != is.Issuer {
			return nil, fmt.Errorf("openid-configuration of %s names issuer %q", is.Issuer, doc.Issuer)
		}
		if doc.JWKSURI == "" {
			return nil, fmt.Errorf("openid-configuration of %s has no jwks_uri", is.Issuer)
		}
		jwksURL = doc.JWKSURI
	}
	b, err := fetch(ctx, client, token, jwksURL)
	if err != nil {
		return nil, err
	}
	return parseJWKS(b)
}

// clientFor returns the HTTP client and bearer token to reach an issuer.
func (kc *keyCache) clientFor(is *IssuerConfig) (*http.Client, string, error) {
	var token string
	if is.BearerTokenFile != "" {
		b, err := os.ReadFile(is.BearerTokenFile)
		if err != nil {
			return nil, "", err
		}
		token = strings.TrimSpace(string(b))
	}
	if is.CAFile == "" && is.ClientCertFile == "" {
		return kc.client, token, nil
	}
	base, _ := kc.client.Transport.(*http.Transport)
	var tlsConf *tls.Config
	if base != nil && base.TLSClientConfig != nil {
		tlsConf = base.TLSClientConfig.Clone()
	} else {
		tlsConf = &tls.Config{}
	}
	if is.CAFile != "" {
		pem, err := os.ReadFile(is.CAFile)
		if err != nil {
			return nil, "", err
		}
		pool := tlsConf.RootCAs
		if pool == nil {
			pool = x509.NewCertPool()
		} else {
			pool = pool.Clone()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("%s: no certificate", is.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	if is.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(is.ClientCertFile, is.ClientKeyFile)
		if err != nil {
			return nil, "", err
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: kc.client.Timeout, Transport: &http.Transport{TLSClientConfig: tlsConf}}, token, nil
}

func fetch(ctx context.Context, client *http.Client, token, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return b, nil
}

// errUnknownKid: the token names a key the issuer does not publish.
var errUnknownKid = errors.New("unknown kid")

// verifyWith checks an RS256 JWT against the issuer's keys: the keys named by
// kid when the token has one (errUnknownKid when no key has that kid; keys
// without a kid match any), otherwise every key.
func verifyWith(token, kid string, keys []issuerKey) error {
	var pubs []*rsa.PublicKey
	for _, k := range keys {
		if kid == "" || k.kid == "" || k.kid == kid {
			pubs = append(pubs, k.pub)
		}
	}
	if len(pubs) == 0 {
		return errUnknownKid
	}
	_, err := pki.Verify(token, pubs...)
	return err
}
