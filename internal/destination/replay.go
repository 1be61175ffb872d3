package destination

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// ReplayRequest selects the stored messages of one destination to re-apply (SPEC §6.6).
type ReplayRequest struct {
	From, To time.Time // received_at range; zero: unbounded
	Types    []string  // message types; empty: all
	DryRun   bool
}

// ReplayResult says what a replay changed, or would change.
type ReplayResult struct {
	DryRun          bool            `json:"dry_run"`
	Messages        int             `json:"messages"`
	ProfilesChanged int             `json:"profiles_changed"`
	Examples        []ReplayExample `json:"examples"`
}

// ReplayExample is one profile before and after the replay; null means no profile.
type ReplayExample struct {
	DistinctID string          `json:"distinct_id"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
}

// Replay chunks and examples.
const (
	replayChunk    = 500
	replayExamples = 5
)

// Replay re-applies a destination's stored messages, in the order they arrived, with the
// destination's settings of today.
//
// The real run writes in chunks of replayChunk messages, each its own transaction, so that it
// never holds the writer for long; it is idempotent (applying a message twice leaves what
// applying it once did), so a replay that stopped half-way is finished by running it again. It
// never creates workflow deliveries: the workflows fired when the messages first arrived.
// Events are updated in place (a changed prefix_events renames them). Values an earlier mapping
// stored are kept: a replay adds what today's mapping reads, it does not take away.
//
// The dry run reads the same messages and applies them to an in-memory copy of the profiles
// they touch; it writes nothing. Errors: ENOTFOUND for an unknown destination.
func (s *Service) Replay(ctx context.Context, tenantID, destinationID string, req ReplayRequest) (*ReplayResult, error) {
	d, err := s.DB.Destination(ctx, tenantID, destinationID)
	if err != nil {
		return nil, err
	}
	settings, err := DecodeSettings(d.Settings)
	if err != nil {
		return nil, err
	}
	res := &ReplayResult{DryRun: req.DryRun, Examples: []ReplayExample{}}
	rec := &recorder{before: map[string][]byte{}}
	mem := &memProfiles{ctx: ctx, db: s.DB, tenantID: tenantID, changed: map[string][]byte{}}
	filter := store.InboundFilter{DestinationID: destinationID, Types: req.Types, From: req.From, To: req.To, Limit: replayChunk}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows, err := s.DB.InboundForReplay(ctx, filter)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			break
		}
		filter.AfterID = rows[len(rows)-1].ID
		res.Messages += len(rows)
		raws := make([]json.RawMessage, len(rows))
		for i, r := range rows {
			raws[i] = r.Body
		}
		parsed := Prepare(raws)
		now := s.DB.Now().UTC().Truncate(time.Millisecond)
		if req.DryRun {
			rec.set = mem
			a := &applier{tenantID: tenantID, destinationID: destinationID, settings: settings, mapping: settings.Mapping(), now: now, set: rec}
			for i := range parsed {
				if parsed[i].Ignored == "" {
					if _, err := a.apply(&parsed[i], rows[i].ID); err != nil {
						return nil, err
					}
				}
			}
			continue
		}
		err = s.DB.Update(ctx, func(tx *store.Tx) error {
			rec.set = &txProfiles{tx: tx, tenantID: tenantID}
			a := &applier{tenantID: tenantID, destinationID: destinationID, settings: settings, mapping: settings.Mapping(), now: now, tx: tx, set: rec}
			for i := range parsed {
				p, row := &parsed[i], rows[i]
				status, reason, warnings := store.InboundApplied, "", []byte(nil)
				if p.Ignored != "" {
					status, reason = store.InboundIgnored, p.Ignored
				} else {
					ws, err := a.apply(p, row.ID)
					if err != nil {
						return err
					}
					if len(ws) > 0 {
						warnings, _ = json.Marshal(ws)
					}
				}
				if status != row.Status || reason != row.Reason || !bytes.Equal(warnings, row.Warnings) {
					if err := tx.SetInboundOutcome(row.ID, status, reason, warnings); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}

	ids := rec.order
	var after map[string][]byte
	if req.DryRun {
		after, err = mem.current(ids)
	} else {
		after, err = s.DB.ProfileBodies(ctx, tenantID, ids)
	}
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		before, now := comparable(rec.before[id]), comparable(after[id])
		if bytes.Equal(before, now) {
			continue
		}
		res.ProfilesChanged++
		if len(res.Examples) < replayExamples {
			res.Examples = append(res.Examples, ReplayExample{DistinctID: id, Before: orNull(rec.before[id]), After: orNull(after[id])})
		}
	}
	return res, nil
}

// recorder wraps a profile set and remembers each profile as it was the first time the replay
// read it, across chunks.
type recorder struct {
	set    profileSet
	before map[string][]byte
	order  []string
}

func (r *recorder) get(id string) (*Profile, error) {
	p, err := r.set.get(id)
	if err != nil {
		return nil, err
	}
	if _, seen := r.before[id]; !seen {
		var b []byte
		if p != nil {
			b = EncodeProfile(p)
		}
		r.before[id] = b
		r.order = append(r.order, id)
	}
	return p, nil
}

func (r *recorder) put(p *Profile, before []store.ChannelValue) error {
	if _, seen := r.before[p.DistinctID]; !seen { // every put follows a get; be safe anyway
		r.before[p.DistinctID] = nil
		r.order = append(r.order, p.DistinctID)
	}
	return r.set.put(p, before)
}

func (r *recorder) remove(id string) error {
	if _, err := r.get(id); err != nil {
		return err
	}
	return r.set.remove(id)
}

// comparable re-encodes a stored profile without updated_at, which every save stamps even when
// it is the only difference; nil stays nil.
func comparable(b []byte) []byte {
	if b == nil {
		return nil
	}
	p, err := DecodeProfile(b)
	if err != nil {
		return b
	}
	p.UpdatedAt = time.Time{}
	return EncodeProfile(p)
}

func orNull(b []byte) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	return b
}
