package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// SourceConfig is what the SparkPost (direction A) handlers need.
type SourceConfig struct {
	// BatchCommitted is told after a batch is committed (the processor wakes).
	BatchCommitted func()
	// Backfill runs back-fill jobs; nil answers back-fill requests with 503.
	Backfill *sparkpost.BackfillRunner
	// InboxBacklog bounds one tenant's batches waiting to be processed, in body bytes: past it
	// the tenant's hooks answer 503 until the processor catches up (DefaultInboxBacklog when 0;
	// negative: no bound).
	InboxBacklog int64
}

// credentialOverlap is how long old credentials keep working after a rotation (SPEC §4.2).
const credentialOverlap = 24 * time.Hour

// oauthTokenTTL is the lifetime of a bearer token issued to SparkPost.
const oauthTokenTTL = time.Hour

// sourceRoutes mounts each provider's hook, the OAuth token endpoint and the source admin routes.
func (s *Server) sourceRoutes(r *gin.Engine, t *gin.RouterGroup) {
	for _, name := range source.Providers() {
		r.POST("/hooks/"+name+"/:sid", s.limitHookMemory, s.hook(source.Lookup(name)))
	}
	r.POST("/oauth/token", s.oauthToken)

	t.POST("/sources", s.createSource)
	t.GET("/sources", s.listSources)
	t.GET("/sources/:sid", s.getSource)
	t.PATCH("/sources/:sid", s.updateSource)
	t.DELETE("/sources/:sid", s.deleteSource)
	t.POST("/sources/:sid/rotate", s.rotateSource)
	t.GET("/sources/:sid/batches/:batch_id", s.getBatchReceipt)
	t.GET("/email-events", s.listEmailEvents)
	t.GET("/email-events.csv", s.exportEmailEvents)
	t.GET("/retention", s.getRetention)
	t.PUT("/retention", s.putRetention)
	t.POST("/sources/:sid/backfill", s.startBackfill)
	t.GET("/sources/:sid/backfill/:job_id", s.getBackfill)
	t.GET("/backfills", s.listBackfills)
}

// sourceOut is a source as the API shows it.
type sourceOut struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	Provider            string    `json:"provider"`
	WebhookURL          string    `json:"webhook_url"`
	Auth                string    `json:"auth"`
	UserIDKeys          []string  `json:"user_id_keys"`
	AnonymousID         string    `json:"anonymous_id"`
	Events              []string  `json:"events"`
	ForwardInitialOpens bool      `json:"forward_initial_opens"`
	PublicKey           string    `json:"public_key,omitempty"`
	Paused              bool      `json:"paused"`
	Credentials         any       `json:"credentials,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

func (s *Server) sourceBody(src *store.Source, creds any) sourceOut {
	return sourceOut{
		ID: src.ID, Name: src.Name, Provider: src.Provider, WebhookURL: s.PublicURL + "/hooks/" + src.Provider + "/" + src.ID, Auth: src.Auth,
		UserIDKeys: src.Settings.UserIDKeys, AnonymousID: src.Settings.AnonymousID, Events: src.Settings.Events,
		ForwardInitialOpens: src.Settings.ForwardInitialOpens, PublicKey: src.Settings.PublicKey, Paused: src.Paused, Credentials: creds,
		CreatedAt: src.CreatedAt, UpdatedAt: src.UpdatedAt,
	}
}

// newCredentials makes a credential pair for a source's auth kind and returns what the API
// shows once: {username, password} or {client_id, client_secret, token_url}; a source that
// relies on its provider's signature alone has none (shown is nil).
func (s *Server) newCredentials(authKind string) (username, secret string, shown any) {
	if authKind == domain.AuthSignature {
		return "", "", nil
	}
	if authKind == domain.AuthOAuth2 {
		id, secret := domain.NewID("spc_"), domain.NewSecret("sps_")
		return id, secret, gin.H{"client_id": id, "client_secret": secret, "token_url": s.PublicURL + "/oauth/token"}
	}
	user, secret := domain.NewID("spu_"), domain.NewSecret("spp_")
	return user, secret, gin.H{"username": user, "password": secret}
}

func (s *Server) createSource(c *gin.Context) {
	var in source.Update
	if !s.decode(c, &in) {
		return
	}
	src, err := in.New(tenantOf(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	user, secret, shown := s.newCredentials(src.Auth)
	if err := s.DB.CreateSource(c.Request.Context(), src, user, auth.HashSecret(secret)); err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusCreated, s.sourceBody(src, shown))
}

func (s *Server) source(c *gin.Context) (*store.Source, bool) {
	src, err := s.DB.Source(c.Request.Context(), tenantOf(c).ID, c.Param("sid"))
	if err != nil {
		s.fail(c, err)
		return nil, false
	}
	return src, true
}

func (s *Server) getSource(c *gin.Context) {
	if src, ok := s.source(c); ok {
		c.PureJSON(http.StatusOK, s.sourceBody(src, nil))
	}
}

func (s *Server) listSources(c *gin.Context) {
	p, err := pageOf(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	srcs, total, err := s.DB.Sources(c.Request.Context(), tenantOf(c).ID, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]sourceOut, len(srcs))
	for i, src := range srcs {
		out[i] = s.sourceBody(src, nil)
	}
	body := ListBody{Results: out, TotalCount: total}
	if n := len(srcs); n > 0 {
		body.Links.Next = nextLink(c, p, n, srcs[n-1].CreatedAt, srcs[n-1].ID)
	}
	c.PureJSON(http.StatusOK, body)
}

func (s *Server) updateSource(c *gin.Context) {
	var in source.Update
	if !s.decode(c, &in) {
		return
	}
	src, ok := s.source(c)
	if !ok {
		return
	}
	wasPaused := src.Paused
	if err := in.Apply(src); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.DB.UpdateSource(c.Request.Context(), src); err != nil {
		s.fail(c, err)
		return
	}
	if wasPaused && !src.Paused {
		s.Wake(domain.TargetSegment, src.TenantID)
	}
	c.PureJSON(http.StatusOK, s.sourceBody(src, nil))
}

func (s *Server) deleteSource(c *gin.Context) {
	if err := s.DB.DeleteSource(c.Request.Context(), tenantOf(c).ID, c.Param("sid")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) rotateSource(c *gin.Context) {
	src, ok := s.source(c)
	if !ok {
		return
	}
	if src.Auth == domain.AuthSignature {
		s.fail(c, domain.Errorf(domain.EINVALID, "auth: this source is checked by its signature alone and has no credentials to rotate; PATCH public_key to change the key"))
		return
	}
	user, secret, shown := s.newCredentials(src.Auth)
	if err := s.DB.RotateSourceCredential(c.Request.Context(), src.TenantID, src.ID, user, auth.HashSecret(secret), credentialOverlap); err != nil {
		s.fail(c, err)
		return
	}
	out := s.sourceBody(src, shown)
	c.PureJSON(http.StatusOK, gin.H{"id": out.ID, "webhook_url": out.WebhookURL, "auth": out.Auth, "credentials": shown,
		"previous_credentials_expire_at": s.DB.Now().Add(credentialOverlap).UTC().Truncate(time.Second)})
}

// receiptOut is a batch receipt as the API shows it: events = duplicates + stored, and stored =
// not_sent + sent + pending + paused + dead. processed_at is absent until the batch is processed.
type receiptOut struct {
	BatchID     string     `json:"batch_id"`
	ReceivedAt  time.Time  `json:"received_at"`
	ProcessedAt *time.Time `json:"processed_at,omitempty"`
	Events      int        `json:"events"`
	Duplicates  int        `json:"duplicates"`
	Stored      int        `json:"stored"`
	NotSent     int        `json:"not_sent"`
	Sent        int        `json:"sent"`
	Pending     int        `json:"pending"`
	Paused      int        `json:"paused"`
	Dead        int        `json:"dead"`
	Error       string     `json:"error,omitempty"`
}

func (s *Server) getBatchReceipt(c *gin.Context) {
	src, ok := s.source(c)
	if !ok {
		return
	}
	r, err := s.DB.Receipt(c.Request.Context(), src.TenantID, src.ID, c.Param("batch_id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	out := receiptOut{
		BatchID: r.BatchID, ReceivedAt: r.ReceivedAt, Events: r.Events, Duplicates: r.Duplicates, Stored: r.Stored,
		NotSent: r.NotSent, Sent: r.Sent, Pending: r.Pending, Paused: r.Paused, Dead: r.Dead, Error: r.Error,
	}
	if !r.ProcessedAt.IsZero() {
		out.ProcessedAt = &r.ProcessedAt
	}
	c.PureJSON(http.StatusOK, out)
}
