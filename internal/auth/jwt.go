// Package auth issues and verifies Switchboard's JWTs, hashes inbound secrets and seals the
// secrets Switchboard must be able to read back (write keys, shared secrets).
package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Issuer is the `iss` of every token; tokens from anyone else are refused.
const Issuer = "switchboard"

// Roles a token can carry.
const (
	RoleOperator = "operator"
	RoleTenant   = "tenant"
	// RoleSource is carried by the short-lived bearer tokens SparkPost gets from /oauth/token;
	// they open one source's hook and nothing else.
	RoleSource = "sparkpost"
)

// Claims are the claims of a Switchboard token.
type Claims struct {
	Role     string `json:"role"`
	TenantID string `json:"tid,omitempty"`
	Gen      int64  `json:"gen,omitempty"`
	// CredentialID is the source credential a RoleSource token was issued for.
	CredentialID int64 `json:"cid,omitempty"`
	jwt.RegisteredClaims
}

// Tokens signs and verifies HS256 JWTs with one key.
type Tokens struct {
	key    []byte
	parser *jwt.Parser
	now    func() time.Time
}

// NewTokens returns a Tokens using key (at least 32 bytes) for HS256.
func NewTokens(key []byte) (*Tokens, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("auth: the JWT signing key must be at least 32 bytes, got %d", len(key))
	}
	t := &Tokens{key: key, now: time.Now}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), // refuses none, RS256, HS512, …
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(Issuer),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
		jwt.WithLeeway(30*time.Second),
	)
	return t, nil
}

// Operator mints an operator token valid for ttl.
func (t *Tokens) Operator(ttl time.Duration) (string, time.Time, error) {
	return t.sign(Claims{Role: RoleOperator}, ttl)
}

// Tenant mints a tenant token of generation gen valid for ttl.
func (t *Tokens) Tenant(tenantID string, gen int64, ttl time.Duration) (string, time.Time, error) {
	return t.sign(Claims{Role: RoleTenant, TenantID: tenantID, Gen: gen}, ttl)
}

// MinTTL is the shortest lifetime a token is minted with: shorter ones expire before use.
const MinTTL = time.Minute

func (t *Tokens) sign(c Claims, ttl time.Duration) (string, time.Time, error) {
	if ttl < MinTTL {
		return "", time.Time{}, domain.Errorf(domain.EINVALID, "ttl: must be at least %s", MinTTL)
	}
	now := t.now().UTC()
	exp := now.Add(ttl).Truncate(time.Second)
	c.Issuer = Issuer
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(exp)
	c.ID = domain.NewID("jwt_")
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	return s, exp, err
}

// Source mints a bearer token for a SparkPost source's OAuth2 client credential.
func (t *Tokens) Source(sourceID string, credentialID int64, ttl time.Duration) (string, time.Time, error) {
	c := Claims{Role: RoleSource, CredentialID: credentialID}
	c.Subject = sourceID
	return t.sign(c, ttl)
}

// VerifySource checks a token minted by Source and returns its claims (Subject is the source id).
func (t *Tokens) VerifySource(token string) (*Claims, error) {
	c, err := t.parse(token)
	if err != nil {
		return nil, err
	}
	if c.Role != RoleSource || c.Subject == "" {
		return nil, domain.Errorf(domain.EUNAUTHORIZED, "token is not a SparkPost source token")
	}
	return c, nil
}

func (t *Tokens) parse(token string) (*Claims, error) {
	var c Claims
	if _, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil }); err != nil {
		return nil, domain.Errorf(domain.EUNAUTHORIZED, "%s", tokenProblem(err))
	}
	return &c, nil
}

// Verify checks an admin token's algorithm, signature, issuer and expiry and returns its claims.
// Every failure is EUNAUTHORIZED with a message that does not echo the token.
func (t *Tokens) Verify(token string) (*Claims, error) {
	c, err := t.parse(token)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Role == RoleOperator && c.TenantID == "":
	case c.Role == RoleTenant && c.TenantID != "":
	default:
		return nil, domain.Errorf(domain.EUNAUTHORIZED, "token has no valid role")
	}
	return c, nil
}

func tokenProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token has expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, claim := range []string{"iss", "exp"} {
			if strings.Contains(err.Error(), claim+" claim is required") {
				return "token lacks the required claim " + claim
			}
		}
		return "token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signature is invalid or its algorithm is not HS256"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token was not issued by switchboard"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token is not valid yet"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed"
	}
	return "token is invalid"
}
