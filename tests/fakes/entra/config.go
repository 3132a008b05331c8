package entra

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Config is the fake's directory: one tenant, its applications (with their
// federated identity credentials), its managed identities, and the external
// token issuers it trusts. It is read from --config and can be replaced at
// run time with PUT /_fake/config.
type Config struct {
	TenantID string `json:"tenant_id"`
	// TenantName is the directory name used in error messages (AADSTS700016
	// says "... was not found in the directory '<name>'"). Default: TenantID.
	TenantName string `json:"tenant_name,omitempty"`

	// TokenLifetimeS is the lifetime of access tokens from the token
	// endpoint (default 3600). Real Entra picks 60-90 minutes at random;
	// TokenLifetimeJitterS adds a random 0..N seconds to imitate that.
	TokenLifetimeS       int `json:"token_lifetime_s,omitempty"`
	TokenLifetimeJitterS int `json:"token_lifetime_jitter_s,omitempty"`
	// IMDSTokenLifetimeS is the lifetime of managed-identity tokens
	// (default: TokenLifetimeS; real ones are valid for about 24 hours).
	IMDSTokenLifetimeS int `json:"imds_token_lifetime_s,omitempty"`
	// BackdateS moves iat/nbf of issued tokens into the past, as Entra does
	// (its tokens start 5 minutes before they are issued). Default 300;
	// a negative value means 0.
	BackdateS *int `json:"backdate_s,omitempty"`
	// ClockSkewS is the tolerance when checking a client assertion's exp
	// and nbf (default 0: an assertion is expired the second after exp).
	ClockSkewS int `json:"clock_skew_s,omitempty"`
	// ClockOffsetS makes issued tokens look as if the fake's clock were off
	// by this many seconds (positive: ahead): iat, nbf and exp (and IMDS's
	// expires_on/not_before) move by it; expires_in does not. Everything
	// else (client assertion checks, timestamps in errors) keeps the real
	// clock. For clock-skew tests: validators use the real clock.
	ClockOffsetS int `json:"clock_offset_s,omitempty"`

	// Resources, when not empty, lists the only resources (scope minus
	// "/.default") tokens may be requested for; others get AADSTS500011.
	Resources []string `json:"resources,omitempty"`

	// FederationErrors selects how a federated credential mismatch is
	// reported: "granular" (default; what Entra returns today:
	// AADSTS700211 issuer / 700213 subject / 700212 audience, invalid_client,
	// HTTP 401) or "legacy" (AADSTS70021, invalid_request, HTTP 400, as
	// Entra answered until about 2023).
	FederationErrors string `json:"federation_errors,omitempty"`

	Issuers           []IssuerConfig    `json:"issuers"`
	Apps              []App             `json:"apps"`
	ManagedIdentities []ManagedIdentity `json:"managed_identities"`

	// AppServiceIdentityHeader enables the App Service / Functions style
	// managed identity endpoint (GET /msi/token?api-version=2019-08-01 on
	// the IMDS listener, header X-IDENTITY-HEADER must carry this value).
	AppServiceIdentityHeader string `json:"app_service_identity_header,omitempty"`
}

// IssuerConfig is an external OIDC issuer whose tokens may be presented as
// client assertions (a Kubernetes service-account issuer). Its signing keys
// come from exactly one of: a PEM public key file, a JWKS file, a JWKS URL,
// or OIDC discovery ({issuer}/.well-known/openid-configuration -> jwks_uri,
// which is what real Entra does).
type IssuerConfig struct {
	Issuer        string `json:"issuer"`
	PublicKeyFile string `json:"public_key_file,omitempty"`
	JWKSFile      string `json:"jwks_file,omitempty"`
	JWKSURL       string `json:"jwks_url,omitempty"`
	OIDCDiscovery bool   `json:"oidc_discovery,omitempty"`

	// For jwks_url / oidc_discovery over HTTPS: extra trusted CA (the pki
	// CA is always trusted), a bearer token file, or a client certificate
	// (for a kube-apiserver that does not serve discovery anonymously).
	CAFile          string `json:"ca_file,omitempty"`
	BearerTokenFile string `json:"bearer_token_file,omitempty"`
	ClientCertFile  string `json:"client_cert_file,omitempty"`
	ClientKeyFile   string `json:"client_key_file,omitempty"`
}

// App is an application registration (its service principal in the tenant).
type App struct {
	ClientID             string                `json:"client_id"`
	ObjectID             string                `json:"object_id"`
	DisplayName          string                `json:"display_name,omitempty"`
	FederatedCredentials []FederatedCredential `json:"federated_credentials"`
}

// FederatedCredential trusts tokens from Issuer with subject Subject and an
// audience among Audiences. Matching is exact and case-sensitive, as Entra's.
type FederatedCredential struct {
	Name      string   `json:"name,omitempty"`
	Issuer    string   `json:"issuer"`
	Subject   string   `json:"subject"`
	Audiences []string `json:"audiences"`
}

// ManagedIdentity is an identity IMDS can hand tokens out for. Default marks
// the system-assigned one (used when the request names no identity).
type ManagedIdentity struct {
	ClientID    string `json:"client_id"`
	ObjectID    string `json:"object_id"`
	ResourceID  string `json:"resource_id,omitempty"` // for msi_res_id / mi_res_id
	DisplayName string `json:"display_name,omitempty"`
	Default     bool   `json:"default,omitempty"`
}

// ParseConfig decodes and checks a configuration. Unknown fields are errors
// so that a typo in a test's config does not silently change behaviour.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	return &c, nil
}

// LoadConfig reads a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(b)
}

func (c *Config) check() error {
	if c.TenantID == "" {
		return errors.New("tenant_id is required")
	}
	if c.TokenLifetimeS < 0 || c.TokenLifetimeJitterS < 0 || c.IMDSTokenLifetimeS < 0 || c.ClockSkewS < 0 {
		return errors.New("lifetimes and clock_skew_s must not be negative")
	}
	switch c.FederationErrors {
	case "", "granular", "legacy":
	default:
		return fmt.Errorf("federation_errors %q: want \"granular\" or \"legacy\"", c.FederationErrors)
	}
	for i, is := range c.Issuers {
		if is.Issuer == "" {
			return fmt.Errorf("issuers[%d]: issuer is required", i)
		}
		n := 0
		for _, set := range []bool{is.PublicKeyFile != "", is.JWKSFile != "", is.JWKSURL != "", is.OIDCDiscovery} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("issuers[%d] (%s): give exactly one of public_key_file, jwks_file, jwks_url, oidc_discovery", i, is.Issuer)
		}
		if (is.ClientCertFile == "") != (is.ClientKeyFile == "") {
			return fmt.Errorf("issuers[%d]: client_cert_file and client_key_file go together", i)
		}
	}
	seen := map[string]bool{}
	for i, a := range c.Apps {
		if a.ClientID == "" || a.ObjectID == "" {
			return fmt.Errorf("apps[%d]: client_id and object_id are required", i)
		}
		if seen[a.ClientID] {
			return fmt.Errorf("apps[%d]: duplicate client_id %s", i, a.ClientID)
		}
		seen[a.ClientID] = true
		for j, f := range a.FederatedCredentials {
			if f.Issuer == "" || f.Subject == "" || len(f.Audiences) == 0 {
				return fmt.Errorf("apps[%d].federated_credentials[%d]: issuer, subject and audiences are required", i, j)
			}
		}
	}
	defaults := 0
	for i, m := range c.ManagedIdentities {
		if m.ClientID == "" || m.ObjectID == "" {
			return fmt.Errorf("managed_identities[%d]: client_id and object_id are required", i)
		}
		if m.Default {
			defaults++
		}
	}
	if defaults > 1 {
		return errors.New("managed_identities: at most one may be the default")
	}
	return nil
}

func (c *Config) tokenLifetime() int {
	if c.TokenLifetimeS == 0 {
		return 3600
	}
	return c.TokenLifetimeS
}

func (c *Config) imdsTokenLifetime() int {
	if c.IMDSTokenLifetimeS == 0 {
		return c.tokenLifetime()
	}
	return c.IMDSTokenLifetimeS
}

func (c *Config) backdate() int {
	if c.BackdateS == nil {
		return 300
	}
	return max(*c.BackdateS, 0)
}

func (c *Config) tenantName() string {
	if c.TenantName != "" {
		return c.TenantName
	}
	return c.TenantID
}

func (c *Config) app(clientID string) *App {
	for i := range c.Apps {
		if c.Apps[i].ClientID == clientID {
			return &c.Apps[i]
		}
	}
	return nil
}

func (c *Config) issuer(iss string) *IssuerConfig {
	for i := range c.Issuers {
		if c.Issuers[i].Issuer == iss {
			return &c.Issuers[i]
		}
	}
	return nil
}

func (c *Config) resourceAllowed(resource string) bool {
	if len(c.Resources) == 0 {
		return true
	}
	for _, r := range c.Resources {
		if r == resource {
			return true
		}
	}
	return false
}
