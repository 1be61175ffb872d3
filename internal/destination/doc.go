// Package destination is direction B: Segment's Webhooks destination posts identify, track,
// page, screen, group, alias and delete calls to Switchboard, which keeps SuprSend-style
// subscriber profiles and turns tracks into workflow events (SPEC §6).
//
// This file set is the pure layer of that direction: it splits and authenticates a hook body,
// reads the few fields of each message Switchboard uses, and applies messages to profiles.
// It touches no database and no network, so the hook handler, the worker and replay (§6.6)
// all share exactly the same rules and a replay with today's mapping gives today's answer.
package destination
