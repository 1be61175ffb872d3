package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// DestinationConfig is what the Segment-destination (direction B) handlers need.
type DestinationConfig struct {
	// OneTransactionPerRequest makes every hook request commit alone instead of sharing a
	// group commit. Only the benchmark sets it: it is the baseline group commit is measured against.
	OneTransactionPerRequest bool
}

// Direction B limits and prefixes.
const (
	// MaxHookMessages caps the messages of one Segment hook call. Segment's Webhooks Actions
	// batch at most 1,000; ten times that is accepted and applied in one transaction, more is 413.
	MaxHookMessages = 10000
	// KeyOverlap is how long a destination's previous API key and shared secret keep working
	// after a rotation.
	KeyOverlap = 24 * time.Hour

	destinationPrefix = "dst_"
)

// destHandlers serves direction B: the Segment hook and the destination, user, message and
// workflow admin routes.
type destHandlers struct {
	s        *Server
	svc      *destination.Service
	messages *prometheus.CounterVec
	cache    hookCache
}

// destinationRoutes mounts the Segment hook and the destination, user and workflow admin routes.
func (s *Server) destinationRoutes(r *gin.Engine, t *gin.RouterGroup) {
	h := &destHandlers{
		s:   s,
		svc: &destination.Service{DB: s.DB},
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_segment_messages_total",
			Help: "Messages Segment posted to destination hooks, by what became of them (accepted, duplicate, ignored).",
		}, []string{"status"}),
	}
	s.Registry.MustRegister(h.messages)
	if s.Destinations.OneTransactionPerRequest {
		var mu sync.Mutex
		h.svc.Update = func(ctx context.Context, fn func(*store.Tx) error) error {
			mu.Lock()
			defer mu.Unlock()
			return s.DB.Update(ctx, fn)
		}
	}

	r.POST("/hooks/segment/:did", s.limitHookMemory, h.hook)

	t.POST("/destinations", h.createDestination)
	t.GET("/destinations", h.listDestinations)
	t.GET("/destinations/:did", h.getDestination)
	t.PATCH("/destinations/:did", h.updateDestination)
	t.DELETE("/destinations/:did", h.deleteDestination)
	t.POST("/destinations/:did/rotate", h.rotateDestination)
	t.POST("/destinations/:did/replay", h.replay)
	t.GET("/destinations/:did/messages", h.listMessages)

	t.GET("/users", h.listUsers)
	t.GET("/users/:distinct_id", h.getUser)
	t.GET("/users/:distinct_id/events", h.listUserEvents)

	t.POST("/workflows", h.createWorkflow)
	t.GET("/workflows", h.listWorkflows)
	t.GET("/workflows/:wid", h.getWorkflow)
	t.PATCH("/workflows/:wid", h.updateWorkflow)
	t.DELETE("/workflows/:wid", h.deleteWorkflow)
}

// fail answers err (see Server.fail).
func (h *destHandlers) fail(c *gin.Context, err error) { h.s.fail(c, err) }

// hook receives Segment's Webhooks destination calls (SPEC §6.1). The order of checks is the
// order a sender can fix them in: unknown destination 404, bad API key 401, body too large 413,
// body not JSON 400, bad signature 401 (also for a malformed body, so an unsigned request never
// learns more than 401), too many messages 413. Then every message is stored and applied in one
// write, and only after it committed the answer is 200.
func (h *destHandlers) hook(c *gin.Context) {
	did := c.Param("did")
	if !domain.ValidID(destinationPrefix, did) {
		h.fail(c, domain.Errorf(domain.ENOTFOUND, "destination not found"))
		return
	}
	ctx, now := c.Request.Context(), h.s.DB.Now()
	d, err := h.hookDestination(ctx, did, now)
	if err != nil {
		h.fail(c, err)
		return
	}
	logTenant(c, d.tenantID)
	if h.s.throttled(c, did) {
		return
	}
	key, err := bearerKey(c.GetHeader("Authorization"))
	if err != nil {
		h.s.authFailed(c, did, err)
		return
	}
	keys := d.working(now)
	if !checkAPIKey(keys, key) {
		h.s.authFailed(c, did, domain.Errorf(domain.EUNAUTHORIZED, "the API key is not this destination's (send Authorization: Bearer <api_key>)"))
		return
	}
	body, err := h.s.readHookBody(c, d.tenantID)
	if err != nil {
		h.fail(c, err)
		return
	}
	split, signed, splitErr := destination.SplitBody(body)
	if splitErr != nil {
		signed = body
	}
	if d.settings.RequireSignature {
		sig := strings.TrimSpace(c.GetHeader("X-Signature"))
		if sig == "" {
			h.fail(c, domain.Errorf(domain.EUNAUTHORIZED, "missing X-Signature; this destination requires signed requests (set the shared secret in Segment)"))
			return
		}
		if !checkSignature(keys, signed, sig) {
			h.s.authFailed(c, did, domain.Errorf(domain.EUNAUTHORIZED, "X-Signature does not match the body (HMAC-SHA1 with the shared secret)"))
			return
		}
	}
	if splitErr != nil {
		h.fail(c, splitErr)
		return
	}
	if !utf8.Valid(body) {
		h.fail(c, domain.Errorf(domain.EINVALID, "body is not valid UTF-8"))
		return
	}
	if len(split) > MaxHookMessages {
		h.fail(c, domain.Errorf(domain.ETOOLARGE, "%d messages in one request; at most %d are accepted", len(split), MaxHookMessages))
		return
	}
	receipt, err := h.svc.Receive(ctx, did, destination.Prepare(split))
	if err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			h.cache.drop(did) // deleted while cached
		}
		h.fail(c, err)
		return
	}
	if receipt.Notify {
		h.s.Wake(domain.TargetWorkflow, receipt.TenantID)
	}
	h.messages.WithLabelValues("accepted").Add(float64(receipt.Accepted))
	h.messages.WithLabelValues("duplicate").Add(float64(receipt.Duplicates))
	h.messages.WithLabelValues("ignored").Add(float64(receipt.Ignored))
	c.PureJSON(http.StatusOK, receipt)
}

// bearerKey reads "Authorization: Bearer <api_key>".
func bearerKey(h string) (string, error) {
	scheme, key, ok := strings.Cut(h, " ")
	if h == "" {
		return "", domain.Errorf(domain.EUNAUTHORIZED, "missing Authorization header; send Authorization: Bearer <api_key>")
	} else if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return "", domain.Errorf(domain.EUNAUTHORIZED, "Authorization header must be: Bearer <api_key>")
	}
	return strings.TrimSpace(key), nil
}

// destinationOut is a destination as the API shows it: secrets only at creation and rotation.
type destinationOut struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	WebhookURL           string            `json:"webhook_url"`
	APIKey               string            `json:"api_key,omitempty"`
	SharedSecret         string            `json:"shared_secret,omitempty"`
	APIKeyHint           string            `json:"api_key_hint"`
	SharedSecretHint     string            `json:"shared_secret_hint"`
	PreviousKeyExpiresAt *time.Time        `json:"previous_key_expires_at,omitempty"`
	PrefixEvents         bool              `json:"prefix_events"`
	ChannelMap           map[string]string `json:"channel_map"`
	PreferenceMap        map[string]string `json:"preference_map"`
	ChannelPolicy        string            `json:"channel_policy"`
	RequireSignature     bool              `json:"require_signature"`
	HoldFor              string            `json:"hold_for"`
	CreatedAt            time.Time         `json:"created_at"`
	UpdatedAt            time.Time         `json:"updated_at"`
}

func (h *destHandlers) destinationBody(d *store.Destination) (*destinationOut, error) {
	st, err := destination.DecodeSettings(d.Settings)
	if err != nil {
		return nil, err
	}
	return &destinationOut{
		ID: d.ID, Name: d.Name, WebhookURL: h.s.PublicURL + "/hooks/segment/" + d.ID,
		APIKeyHint: d.Key.APIKeyHint, SharedSecretHint: d.Key.SecretHint,
		PrefixEvents: st.PrefixEvents, ChannelMap: st.ChannelMap, PreferenceMap: st.PreferenceMap, ChannelPolicy: st.ChannelPolicy,
		RequireSignature: st.RequireSignature, HoldFor: destination.FormatDuration(st.HoldFor),
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}, nil
}

// destinationIn is the body of POST and PATCH …/destinations.
type destinationIn struct {
	Name *string `json:"name"`
	destination.SettingsInput
}

// newDestinationKey makes a fresh API key and shared secret.
func (h *destHandlers) newDestinationKey() (store.DestinationKey, string, string) {
	apiKey, secret := domain.NewSecret("sbk_"), domain.NewSecret("sbs_")
	return store.DestinationKey{
		APIKeyHash: auth.HashSecret(apiKey), APIKeyHint: domain.Hint(apiKey),
		SecretEnc: h.s.Box.Seal(secret), SecretHint: domain.Hint(secret),
	}, apiKey, secret
}

func (h *destHandlers) createDestination(c *gin.Context) {
	var in destinationIn
	if !h.s.decode(c, &in) {
		return
	}
	name, err := domain.CheckName("name", in.Name)
	if err != nil {
		h.fail(c, err)
		return
	}
	settings, err := in.SettingsInput.Apply(destination.DefaultSettings())
	if err != nil {
		h.fail(c, err)
		return
	}
	key, apiKey, secret := h.newDestinationKey()
	d := &store.Destination{ID: domain.NewID(destinationPrefix), TenantID: tenantOf(c).ID, Name: name, Settings: settings.Encode(), Key: key}
	if err := h.s.DB.CreateDestination(c.Request.Context(), d); err != nil {
		h.fail(c, err)
		return
	}
	out, err := h.destinationBody(d)
	if err != nil {
		h.fail(c, err)
		return
	}
	out.APIKey, out.SharedSecret = apiKey, secret
	c.PureJSON(http.StatusCreated, out)
}

func (h *destHandlers) listDestinations(c *gin.Context) {
	p, err := pageOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	ds, total, err := h.s.DB.Destinations(c.Request.Context(), tenantOf(c).ID, p)
	if err != nil {
		h.fail(c, err)
		return
	}
	results := make([]*destinationOut, 0, len(ds))
	for _, d := range ds {
		out, err := h.destinationBody(d)
		if err != nil {
			h.fail(c, err)
			return
		}
		results = append(results, out)
	}
	body := ListBody{Results: results, TotalCount: total}
	if len(ds) > 0 {
		last := ds[len(ds)-1]
		body.Links.Next = nextLink(c, p, len(ds), last.CreatedAt, last.ID)
	}
	c.PureJSON(http.StatusOK, body)
}

// destinationOf loads the :did destination of the request's tenant. Errors: ENOTFOUND.
func (h *destHandlers) destinationOf(c *gin.Context) (*store.Destination, error) {
	did := c.Param("did")
	if !domain.ValidID(destinationPrefix, did) {
		return nil, domain.Errorf(domain.ENOTFOUND, "destination not found")
	}
	return h.s.DB.Destination(c.Request.Context(), tenantOf(c).ID, did)
}

func (h *destHandlers) getDestination(c *gin.Context) {
	d, err := h.destinationOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	out, err := h.destinationBody(d)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, out)
}

// updateDestination changes the name and settings given; channel_map and preference_map are
// merged into the current maps (a key set to null removes it).
func (h *destHandlers) updateDestination(c *gin.Context) {
	d, err := h.destinationOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	var in destinationIn
	if !h.s.decode(c, &in) {
		return
	}
	name := d.Name
	if in.Name != nil {
		if name, err = domain.CheckName("name", in.Name); err != nil {
			h.fail(c, err)
			return
		}
	}
	current, err := destination.DecodeSettings(d.Settings)
	if err != nil {
		h.fail(c, err)
		return
	}
	settings, err := in.SettingsInput.Apply(current)
	if err != nil {
		h.fail(c, err)
		return
	}
	d, err = h.s.DB.UpdateDestination(c.Request.Context(), d.TenantID, d.ID, name, settings.Encode())
	h.cache.drop(c.Param("did"))
	if err != nil {
		h.fail(c, err)
		return
	}
	out, err := h.destinationBody(d)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, out)
}

func (h *destHandlers) deleteDestination(c *gin.Context) {
	d, err := h.destinationOf(c)
	if err == nil {
		err = h.s.DB.DeleteDestination(c.Request.Context(), d.TenantID, d.ID)
		h.cache.drop(d.ID)
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// rotateDestination issues a new API key and shared secret; the previous ones keep working for
// KeyOverlap, long enough to update Segment's settings.
func (h *destHandlers) rotateDestination(c *gin.Context) {
	d, err := h.destinationOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	key, apiKey, secret := h.newDestinationKey()
	until, err := h.s.DB.RotateDestinationKey(c.Request.Context(), d.TenantID, d.ID, &key, KeyOverlap)
	h.cache.drop(d.ID)
	if err != nil {
		h.fail(c, err)
		return
	}
	d.Key = key
	out, err := h.destinationBody(d)
	if err != nil {
		h.fail(c, err)
		return
	}
	out.APIKey, out.SharedSecret, out.PreviousKeyExpiresAt = apiKey, secret, &until
	c.PureJSON(http.StatusOK, out)
}

// replay re-applies a destination's stored messages with today's settings (SPEC §6.6).
func (h *destHandlers) replay(c *gin.Context) {
	d, err := h.destinationOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	var in struct {
		From   *string  `json:"from"`
		To     *string  `json:"to"`
		Types  []string `json:"types"`
		DryRun *bool    `json:"dry_run"`
	}
	if c.Request.ContentLength != 0 && !h.s.decode(c, &in) {
		return
	}
	req := destination.ReplayRequest{DryRun: in.DryRun != nil && *in.DryRun}
	for _, f := range []struct {
		name string
		v    *string
		dst  *time.Time
	}{{"from", in.From, &req.From}, {"to", in.To, &req.To}} {
		if f.v == nil || *f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, *f.v)
		if err != nil {
			h.fail(c, domain.Errorf(domain.EINVALID, "%s: %q is not an ISO-8601 time such as 2024-05-01T00:00:00Z", f.name, *f.v))
			return
		}
		*f.dst = t
	}
	if !req.From.IsZero() && !req.To.IsZero() && !req.From.Before(req.To) {
		h.fail(c, domain.Errorf(domain.EINVALID, "to: must be after from"))
		return
	}
	for _, t := range in.Types {
		if !isSegmentType(t) {
			h.fail(c, domain.Errorf(domain.EINVALID, "types: %q is not a Segment message type (identify, track, page, screen, group, alias, delete)", t))
			return
		}
		req.Types = append(req.Types, t)
	}
	res, err := h.svc.Replay(c.Request.Context(), d.TenantID, d.ID, req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, res)
}

func isSegmentType(t string) bool {
	switch t {
	case destination.TypeIdentify, destination.TypeTrack, destination.TypePage, destination.TypeScreen,
		destination.TypeGroup, destination.TypeAlias, destination.TypeDelete:
		return true
	}
	return false
}
