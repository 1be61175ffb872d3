// Package destination is direction B: Segment's Webhooks destination posts identify, track,
// page, screen, group, alias and delete calls to Switchboard, which keeps SuprSend-style
// subscriber profiles and turns tracks into workflow events (SPEC §6).
//
// The package has two layers. The pure layer (message.go, mapping.go, profile.go, validate.go,
// settings.go) splits and authenticates a hook body, reads the few fields of each message
// Switchboard uses, and applies messages to profiles; it touches no database and no network.
// The service layer (apply.go, replay.go, profiles.go, retention.go) runs those rules against the
// store: the hook stores and applies a whole body in one write, and replay (§6.6) re-applies
// stored messages through the very same code, so a replay with today's mapping gives today's
// answer. Workflow deliveries go into the shared outbox; internal/delivery sends them.
package destination
