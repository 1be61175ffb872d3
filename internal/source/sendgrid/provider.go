// Package sendgrid is SendGrid's side of direction A: it splits an Event Webhook post (a JSON
// array of flat event objects) into its events, parses each tolerantly, maps it to a Segment
// track call, and verifies the Signed Event Webhook. It plugs into the provider-neutral
// pipeline of package source as the "sendgrid" Provider; the hook, the processor and the event
// store never name it.
package sendgrid

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// Types are the event types SendGrid's Event Webhook posts; a source's `events` list must name
// them. account_status_change (an account event) is stored but never sent to Segment.
var Types = []string{
	"processed", "deferred", "delivered", "bounce", "dropped",
	"open", "click", "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe",
	"account_status_change",
}

// Provider is SendGrid as a source.Provider (also a source.Verifier and source.SettingsChecker).
var Provider source.Provider = provider{}

func init() { source.Register(Provider) }

type provider struct{}

func (provider) Name() string    { return domain.ProviderSendGrid }
func (provider) Title() string   { return "SendGrid" }
func (provider) Types() []string { return slices.Clone(Types) }

// Auths puts the Signed Event Webhook first: it is what SendGrid recommends, and it needs no
// secret shared with SendGrid. Basic auth (credentials in the HTTP Post URL) and OAuth 2.0
// (client credentials against /oauth/token) are SendGrid's other two options.
func (provider) Auths() []string {
	return []string{domain.AuthSignature, domain.AuthBasic, domain.AuthOAuth2}
}

func (provider) Split(body []byte) ([]json.RawMessage, bool, error) { return SplitBatch(body) }

// SplitStored splits a stored batch, an array SplitBatch accepted.
func (provider) SplitStored(body []byte) []json.RawMessage { return source.ArrayElements(body) }
func (provider) Parse(elem json.RawMessage) source.Event   { return ParseEvent(elem) }
func (provider) Map(tenantID string, ev source.Event, s domain.SourceSettings) (delivery.SegmentMessage, source.Outcome, string) {
	return Map(tenantID, ev, s)
}

func (provider) Verify(header func(string) string, body []byte, s domain.SourceSettings, now time.Time) error {
	return Verify(header, body, s.PublicKey, now)
}

func (provider) CheckSettings(auth string, s domain.SourceSettings) error {
	return CheckSettings(auth, s)
}
