package sparkpost

import (
	"encoding/json"
	"slices"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// Types are the event types SparkPost documents; a source's `events` list must name them.
var Types = []string{
	"delivery", "bounce", "out_of_band", "open", "amp_open", "initial_open", "amp_initial_open", "click", "amp_click",
	"spam_complaint", "list_unsubscribe", "link_unsubscribe", "injection", "delay", "policy_rejection",
	"generation_failure", "generation_rejection", "sms_status", "relay_injection", "relay_rejection", "relay_delivery",
	"relay_tempfail", "relay_permfail", "ab_test_completed", "ab_test_cancelled",
}

// BatchIDHeader is the header naming a SparkPost webhook batch; a re-sent batch keeps its id.
const BatchIDHeader = "X-MessageSystems-Batch-ID"

// Provider is SparkPost as a source.Provider.
var Provider source.Provider = provider{}

func init() { source.Register(Provider) }

type provider struct{}

func (provider) Name() string    { return domain.ProviderSparkPost }
func (provider) Title() string   { return "SparkPost" }
func (provider) Types() []string { return slices.Clone(Types) }
func (provider) Auths() []string { return []string{domain.AuthBasic, domain.AuthOAuth2} }

func (provider) Split(body []byte) ([]json.RawMessage, bool, error) { return SplitBatch(body) }

// SplitStored splits a stored batch, an array SplitBatch accepted.
func (provider) SplitStored(body []byte) []json.RawMessage { return source.ArrayElements(body) }
func (provider) Parse(elem json.RawMessage) source.Event   { return ParseEvent(elem) }
func (provider) Map(tenantID string, ev source.Event, s domain.SourceSettings) (delivery.SegmentMessage, source.Outcome, string) {
	return Map(tenantID, ev, s)
}

// BatchIDHeader names SparkPost's batch id header.
func (provider) BatchIDHeader() string { return BatchIDHeader }
