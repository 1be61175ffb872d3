package server

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/domain"
)

// hookCacheTTL bounds how long the hook trusts a cached destination when nothing this server
// did dropped it (tenant deletion, another tool editing the database).
const hookCacheTTL = 10 * time.Second

// maxHookCache bounds the cache; past it the cache starts over.
const maxHookCache = 10000

// hookCache keeps what the Segment hook needs before it reads a body — the destination's
// tenant, settings and working keys, with the shared secrets opened — so that a hook call does
// no database read before its write. Changes made through this server (PATCH, rotate, delete)
// drop the entry at once, and a key past its overlap stops working at its expiry whatever the
// cache holds. A destination deleted while cached is caught inside the write, which reads the
// destination again: its hook answers 404 either way.
type hookCache struct {
	mu sync.Mutex
	m  map[string]*hookEntry
}

// hookEntry is one cached destination.
type hookEntry struct {
	tenantID string
	settings destination.Settings
	keys     []hookKey
	loaded   time.Time
}

// hookKey is one working API key hash and its shared secret, opened.
type hookKey struct {
	apiKeyHash string
	secret     string
	expiresAt  time.Time // zero: current
}

// drop forgets a destination, after a change to it.
func (c *hookCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// hookDestination returns the destination of a hook call, from the cache or the database.
// Errors: ENOTFOUND.
func (h *destHandlers) hookDestination(ctx context.Context, id string, now time.Time) (*hookEntry, error) {
	c := &h.cache
	c.mu.Lock()
	e := c.m[id]
	c.mu.Unlock()
	if e != nil && now.Sub(e.loaded) < hookCacheTTL && !now.Before(e.loaded) {
		return e, nil
	}
	d, err := h.s.DB.DestinationForHook(ctx, id)
	if err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			c.drop(id)
		}
		return nil, err
	}
	settings, err := destination.DecodeSettings(d.Settings)
	if err != nil {
		return nil, err
	}
	e = &hookEntry{tenantID: d.TenantID, settings: settings, loaded: now}
	for _, k := range d.Keys {
		secret, err := h.s.Box.Open(k.SecretEnc)
		if err != nil {
			return nil, err
		}
		e.keys = append(e.keys, hookKey{apiKeyHash: k.APIKeyHash, secret: secret, expiresAt: k.ExpiresAt})
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxHookCache {
		c.m = map[string]*hookEntry{}
	}
	c.m[id] = e
	c.mu.Unlock()
	return e, nil
}

// working returns the keys that still work at now.
func (e *hookEntry) working(now time.Time) []hookKey {
	out := make([]hookKey, 0, len(e.keys))
	for _, k := range e.keys {
		if k.expiresAt.IsZero() || now.Before(k.expiresAt) {
			out = append(out, k)
		}
	}
	return out
}

// checkAPIKey reports whether key is one of keys. Every key is checked, so the time taken does
// not tell which one matched.
func checkAPIKey(keys []hookKey, key string) bool {
	valid := false
	for _, k := range keys {
		if auth.CheckSecret(k.apiKeyHash, key) {
			valid = true
		}
	}
	return valid
}

// checkSignature reports whether header is the X-Signature of signed under one of the keys'
// shared secrets.
func checkSignature(keys []hookKey, signed []byte, header string) bool {
	valid := false
	for _, k := range keys {
		if destination.VerifySignature(k.secret, signed, header) {
			valid = true
		}
	}
	return valid
}
