// Package source is the provider-neutral half of direction A (email provider → Segment): the
// Provider seam that each provider folder (sparkpost, sendgrid) fills in, the processor that
// turns committed inbox batches into stored events and queued Segment deliveries, the mapping
// rules every provider shares (identity, size, messageId), the rules of a source's settings, and
// the one JSON walker the providers and the event store read bodies with.
package source

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Provider is the seam between the provider-neutral pipeline (hook → inbox → processor →
// outbox) and one sender's webhook format. A provider package (internal/source/sparkpost,
// internal/source/sendgrid) implements it and registers itself; the hook, the processor and the
// back-fill never name a provider.
type Provider interface {
	// Name is the provider's name in the API (a source's `provider`) and in its hook path
	// /hooks/{name}/{source_id}.
	Name() string
	// Title is the provider's name as its users write it ("SparkPost"), for messages.
	Title() string
	// Types lists the event types the provider sends, for a source's `events` allow-list.
	Types() []string
	// Auths lists the webhook authentication kinds (domain.Auth*) a source may use, the
	// default first.
	Auths() []string
	// Split splits a webhook body into its events without parsing them; ping reports a
	// provider's test request, which has nothing to store. Errors are EINVALID and name the
	// problem. Elements are sub-slices of body.
	Split(body []byte) (elems []json.RawMessage, ping bool, err error)
	// Parse parses one element tolerantly: it never fails and always gives an EventID, so an
	// odd event is stored once (with ParseError) and deduplicated when it is sent again.
	Parse(elem json.RawMessage) Event
	// Map builds the Segment track call for a parsed event; reason explains every outcome
	// but OutcomeSend in a few words.
	Map(tenantID string, ev Event, s domain.SourceSettings) (t delivery.SegmentMessage, out Outcome, reason string)
}

// Verifier is a Provider whose requests carry a signature of their own (SendGrid's Signed
// Event Webhook), checked before the body is stored.
type Verifier interface {
	// Verify checks the request's signature over body with the source's settings; header
	// reads a request header. It returns an EUNAUTHORIZED error naming the problem.
	Verify(header func(string) string, body []byte, s domain.SourceSettings, now time.Time) error
}

// StoredSplitter is a Provider that splits a body it accepted before (a batch the hook stored)
// without validating the JSON again: the processor's Split of a 1 MB batch spent most of its
// time in json.Valid, repeating what the hook had checked.
type StoredSplitter interface {
	// SplitStored returns the events of a body Split accepted (and did not call a ping).
	SplitStored(body []byte) []json.RawMessage
}

// BatchIDer is a Provider whose requests name their batch (SparkPost's
// X-MessageSystems-Batch-ID), so that a re-sent batch is answered without being stored twice.
type BatchIDer interface {
	// BatchIDHeader names the request header that holds the batch id.
	BatchIDHeader() string
}

var providers []Provider

// Register makes a provider known; each provider package calls it from init. A third
// provider is a sibling folder plus one import line in the wiring.
func Register(p Provider) {
	if Lookup(p.Name()) != nil {
		panic("source: provider " + p.Name() + " registered twice")
	}
	providers = append(providers, p)
}

// Lookup returns the provider called name, or nil.
func Lookup(name string) Provider {
	for _, p := range providers {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// Providers lists the registered providers' names, sorted.
func Providers() []string {
	names := make([]string, 0, len(providers))
	for _, p := range providers {
		names = append(names, p.Name())
	}
	slices.Sort(names)
	return names
}
