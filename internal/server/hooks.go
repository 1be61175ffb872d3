package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/store"
	"github.com/switchboard-hub/switchboard/internal/web"
)

// hook returns the webhook handler of one provider, mounted at /hooks/{provider}/{source_id}:
// authenticate, read, commit the raw batch, then answer 200. Everything else happens in the
// processor after the answer (SparkPost waits 10 s, SendGrid 3 s).
func (s *Server) hook(p source.Provider) gin.HandlerFunc {
	batchIDs, _ := p.(source.BatchIDer)
	verifier, _ := p.(source.Verifier)
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		sid := c.Param("sid")
		if !domain.ValidID("src_", sid) {
			s.fail(c, domain.Errorf(domain.ENOTFOUND, "source not found"))
			return
		}
		src, err := s.DB.SourceByID(ctx, sid)
		if err == nil && src.Provider != p.Name() {
			err = domain.Errorf(domain.ENOTFOUND, "source not found") // another provider's source: not here
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		logTenant(c, src.TenantID)
		if s.throttled(c, src.ID) {
			return
		}
		if src.Auth == domain.AuthSignature && verifier == nil {
			// Only a provider that signs its requests may have signature-only sources; anything
			// else here is refused rather than let in unauthenticated.
			s.authFailed(c, src.ID, domain.Errorf(domain.EUNAUTHORIZED, "this source's provider does not sign its requests"))
			return
		}
		if src.Auth != domain.AuthSignature {
			if err := s.authenticateSource(c.Request, src); err != nil {
				c.Header("WWW-Authenticate", `Basic realm="switchboard"`)
				s.authFailed(c, src.ID, err)
				return
			}
		}
		if err := web.RequireJSON(c.Request); err != nil {
			s.fail(c, err)
			return
		}
		body, err := s.readHookBody(c, src.TenantID)
		if err != nil {
			s.fail(c, err)
			return
		}
		if verifier != nil && (src.Auth == domain.AuthSignature || src.Settings.PublicKey != "") {
			// The signature covers the raw body, so it is checked once the body is read.
			if err := verifier.Verify(c.Request.Header.Get, body, src.Settings, s.DB.Now()); err != nil {
				s.authFailed(c, src.ID, err)
				return
			}
		}
		if waiting, full := s.backlog.full(ctx, src.TenantID); full {
			s.hookBudget.refused.WithLabelValues(refusedInboxBacklog).Inc()
			c.Header("Retry-After", strconv.Itoa(backlogRetryAfter))
			s.fail(c, domain.Errorf(domain.EUNAVAILABLE, "this tenant's batches waiting to be processed already hold %d MiB, its bound (%d MiB); retry shortly (%s retries refused batches, nothing is lost)",
				waiting>>20, s.backlog.limit>>20, p.Title()))
			return
		}
		if !utf8.Valid(body) {
			s.fail(c, domain.Errorf(domain.EINVALID, "request body is not valid UTF-8"))
			return
		}
		elems, ping, err := p.Split(body)
		if err != nil {
			s.fail(c, err)
			return
		}
		if ping {
			c.PureJSON(http.StatusOK, gin.H{"accepted": 0, "ping": true})
			return
		}
		if len(elems) > s.MaxBatchEvents {
			s.fail(c, domain.Errorf(domain.ETOOLARGE, "%d events in one batch; at most %d are accepted (%s sends up to about 1,000)",
				len(elems), s.MaxBatchEvents, p.Title()))
			return
		}
		b := &store.InboxBatch{TenantID: src.TenantID, SourceID: src.ID, Body: body}
		if batchIDs != nil {
			b.BatchID = c.GetHeader(batchIDs.BatchIDHeader())
			if len(b.BatchID) > 200 {
				s.fail(c, domain.Errorf(domain.EINVALID, "%s: must be at most 200 characters", batchIDs.BatchIDHeader()))
				return
			}
		}
		dup, err := s.DB.AddBatch(ctx, b)
		if err != nil {
			s.fail(c, err)
			return
		}
		if dup {
			c.PureJSON(http.StatusOK, gin.H{"accepted": 0, "duplicate": true, "batch_id": b.BatchID})
			return
		}
		s.backlog.added(src.TenantID, len(body))
		if s.Sources.BatchCommitted != nil {
			s.Sources.BatchCommitted()
		}
		out := gin.H{"accepted": len(elems)}
		if batchIDs != nil {
			out["batch_id"] = b.BatchID
		}
		c.PureJSON(http.StatusOK, out)
	}
}

// authenticateSource checks a sender's credentials for a source: HTTP Basic for basic sources,
// a bearer token from /oauth/token for oauth2 sources. Every failure is 401.
func (s *Server) authenticateSource(r *http.Request, src *store.Source) error {
	creds, err := s.DB.SourceCredentials(r.Context(), src.ID)
	if err != nil {
		return err
	}
	if src.Auth == domain.AuthOAuth2 {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			return domain.Errorf(domain.EUNAUTHORIZED, "this source uses OAuth2: send Authorization: Bearer <access token from /oauth/token>")
		}
		claims, err := s.Tokens.VerifySource(strings.TrimSpace(token))
		if err != nil {
			return err
		}
		if !auth.Equal(claims.Subject, src.ID) {
			return domain.Errorf(domain.EUNAUTHORIZED, "token was issued for another source")
		}
		for _, c := range creds {
			if c.ID == claims.CredentialID {
				return nil
			}
		}
		return domain.Errorf(domain.EUNAUTHORIZED, "token's client credentials were rotated out")
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return domain.Errorf(domain.EUNAUTHORIZED, "this source uses HTTP Basic auth: send the username and password it was created with")
	}
	if matchCredential(creds, user, pass) == nil {
		return domain.Errorf(domain.EUNAUTHORIZED, "wrong username or password")
	}
	return nil
}

// matchCredential returns the credential whose username and secret match, comparing in
// constant time, or nil.
func matchCredential(creds []store.SourceCredential, user, secret string) *store.SourceCredential {
	var found *store.SourceCredential
	for i := range creds {
		// Check every credential so the time taken does not tell which one matched.
		if auth.Equal(creds[i].Username, user) && auth.CheckSecret(creds[i].SecretHash, secret) && found == nil {
			found = &creds[i]
		}
	}
	return found
}

// oauthToken is the OAuth2 client-credentials token endpoint that SparkPost's and SendGrid's
// OAuth 2.0 webhook auth calls for an `oauth2` source. The client id and secret come
// form-encoded, as JSON, or as HTTP Basic.
func (s *Server) oauthToken(c *gin.Context) {
	var in struct {
		GrantType    string `json:"grant_type"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	ct := strings.ToLower(c.GetHeader("Content-Type"))
	switch {
	case strings.HasPrefix(ct, "application/json"):
		body, err := web.ReadBody(c.Writer, c.Request, 64<<10)
		if err == nil && json.Unmarshal(body, &in) != nil {
			err = domain.Errorf(domain.EINVALID, "request body is not a valid JSON object")
		}
		if err != nil {
			s.fail(c, err)
			return
		}
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"), ct == "":
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10)
		if err := c.Request.ParseForm(); err != nil {
			s.fail(c, domain.Errorf(domain.EINVALID, "request body is not a valid form"))
			return
		}
		in.GrantType, in.ClientID, in.ClientSecret = c.Request.PostForm.Get("grant_type"), c.Request.PostForm.Get("client_id"), c.Request.PostForm.Get("client_secret")
	default:
		s.fail(c, domain.Errorf(domain.EUNSUPPORTED, "Content-Type must be application/x-www-form-urlencoded or application/json"))
		return
	}
	if user, pass, ok := c.Request.BasicAuth(); ok {
		in.ClientID, in.ClientSecret = user, pass
	}
	if in.GrantType != "" && in.GrantType != "client_credentials" {
		s.fail(c, domain.Errorf(domain.EINVALID, "grant_type: only client_credentials is supported"))
		return
	}
	if in.ClientID == "" || in.ClientSecret == "" {
		s.fail(c, domain.Errorf(domain.EUNAUTHORIZED, "client_id and client_secret are required"))
		return
	}
	if s.throttled(c, in.ClientID) {
		return
	}
	creds, err := s.DB.CredentialsByUsername(c.Request.Context(), in.ClientID)
	if err != nil {
		s.fail(c, err)
		return
	}
	cred := matchCredential(creds, in.ClientID, in.ClientSecret)
	if cred == nil || !strings.HasPrefix(cred.Username, "spc_") {
		s.authFailed(c, in.ClientID, domain.Errorf(domain.EUNAUTHORIZED, "unknown client_id or wrong client_secret"))
		return
	}
	token, _, err := s.Tokens.Source(cred.SourceID, cred.ID, oauthTokenTTL)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.PureJSON(http.StatusOK, gin.H{"access_token": token, "token_type": "Bearer", "expires_in": int(oauthTokenTTL.Seconds())})
}
