package destination

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// Limits on what one message may carry. Segment's own ids are far shorter; these only stop a
// hostile sender from turning one field into a huge primary key.
const (
	maxMessageID = 256
	maxUserID    = 1024
)

var zeroTime time.Time

// Parsed is one element of a hook body, read before the write so that JSON work never runs on
// the single writer.
type Parsed struct {
	Raw        json.RawMessage
	Msg        Message
	MessageID  string // Segment's messageId, or "sha256:<hex>" of Raw when it has none
	DistinctID string // userId; for events userId or anonymousId
	Ignored    string // why it cannot be applied ("" when it can)
	Props      []byte // track/page/screen properties as JSON
}

// Prepare parses the messages of a hook body (or of a replay).
func Prepare(msgs []json.RawMessage) []Parsed {
	out := make([]Parsed, len(msgs))
	for i, raw := range msgs {
		p := &out[i]
		p.Raw = raw
		p.Msg, p.Ignored = ParseMessage(raw)
		p.MessageID = p.Msg.MessageID
		switch {
		case len(p.MessageID) > maxMessageID:
			p.MessageID = ""
			if p.Ignored == "" {
				p.Ignored = "messageId is longer than " + strconv.Itoa(maxMessageID) + " characters"
			}
		case p.Ignored == "" && (len(p.Msg.UserID) > maxUserID || len(p.Msg.AnonymousID) > maxUserID || len(p.Msg.PreviousID) > maxUserID):
			p.Ignored = "userId, anonymousId or previousId is longer than " + strconv.Itoa(maxUserID) + " characters"
		}
		if p.MessageID == "" {
			sum := sha256.Sum256(raw)
			p.MessageID = "sha256:" + hex.EncodeToString(sum[:])
		}
		if !knownType(p.Msg.Type) {
			p.Msg.Type = ""
		}
		p.DistinctID = p.Msg.UserID
		if isEventType(p.Msg.Type) {
			if p.DistinctID == "" {
				p.DistinctID = p.Msg.AnonymousID
			}
			if p.Ignored == "" {
				p.Props, _ = json.Marshal(nonNilProps(p.Msg.Properties))
			}
		}
		if len(p.DistinctID) > maxUserID {
			p.DistinctID = ""
		}
	}
	return out
}

func knownType(t string) bool {
	switch t {
	case TypeIdentify, TypeTrack, TypePage, TypeScreen, TypeGroup, TypeAlias, TypeDelete:
		return true
	}
	return false
}

func isEventType(t string) bool { return t == TypeTrack || t == TypePage || t == TypeScreen }

// isNotFound reports whether err is the store's ENOTFOUND.
func isNotFound(err error) bool { return domain.ErrorCode(err) == domain.ENOTFOUND }

func nonNilProps(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Receipt is the answer to a hook call (SPEC §6.1), with the reasons for what was not applied.
type Receipt struct {
	Accepted       int              `json:"accepted"`
	Duplicates     int              `json:"duplicates"`
	Ignored        int              `json:"ignored"`
	IgnoredReasons []IgnoredMessage `json:"ignored_reasons,omitempty"`
	Warnings       []WarnedMessage  `json:"warnings,omitempty"`

	// TenantID owns the destination; Notify says workflow deliveries became due or were added,
	// so the tenant's delivery lane should look.
	TenantID string `json:"-"`
	Notify   bool   `json:"-"`
}

// IgnoredMessage says why one message of a hook body was not applied.
type IgnoredMessage struct {
	Index     int    `json:"index"`
	MessageID string `json:"message_id"`
	Reason    string `json:"reason"`
}

// WarnedMessage lists the values of one applied message that were not stored.
type WarnedMessage struct {
	Index     int       `json:"index"`
	MessageID string    `json:"message_id"`
	Warnings  []Warning `json:"warnings"`
}

// maxReasons bounds the per-message details of a receipt; the counts stay exact and every
// message's status is stored.
const maxReasons = 100

// Store is what direction B needs of a store (package store's *DB is one): the profiles, the
// destination and its stored messages for a replay, and the one write each hook call is.
type Store interface {
	Profiles
	Now() time.Time
	Update(ctx context.Context, fn func(tx *store.Tx) error) error
	Destination(ctx context.Context, tenantID, id string) (*store.Destination, error)
	InboundForReplay(ctx context.Context, f store.InboundFilter) ([]*store.InboundMessage, error)
}

// Profiles is what reading subscriber profiles needs of a store.
type Profiles interface {
	Profile(ctx context.Context, tenantID, distinctID string) (*store.ProfileRow, error)
	ProfileBodies(ctx context.Context, tenantID string, ids []string) (map[string][]byte, error)
}

// Service applies Segment messages to a tenant's profiles, events and workflow deliveries.
type Service struct {
	DB Store
	// Update runs the hook's write; nil means DB.Update (group commit).
	Update func(ctx context.Context, fn func(tx *store.Tx) error) error
}

// Receive stores every message of one hook call and applies the new ones, in ONE write: the
// caller answers 200 only after it committed, and a message is never stored without its effects
// (or the reverse). Errors: ENOTFOUND when the destination was deleted meanwhile.
func (s *Service) Receive(ctx context.Context, destinationID string, msgs []Parsed) (*Receipt, error) {
	var r Receipt
	update := s.Update
	if update == nil {
		update = s.DB.Update
	}
	err := update(ctx, func(tx *store.Tx) error {
		r = Receipt{}
		tenantID, raw, hasWorkflows, err := tx.DestinationForWrite(destinationID)
		if err != nil {
			return err
		}
		settings, err := DecodeSettings(raw)
		if err != nil {
			return err
		}
		now := s.DB.Now().UTC().Truncate(time.Millisecond)
		set, err := readProfiles(tx, tenantID, msgs)
		if err != nil {
			return err
		}
		a := &applier{
			tenantID: tenantID, destinationID: destinationID, settings: settings, mapping: settings.Mapping(),
			now: now, tx: tx, live: true, hasWorkflows: hasWorkflows, set: set,
		}
		r.TenantID = tenantID
		for i := range msgs {
			p := &msgs[i]
			row := &store.InboundMessage{
				TenantID: tenantID, DestinationID: destinationID, MessageID: p.MessageID, Type: p.Msg.Type,
				DistinctID: p.DistinctID, Body: p.Raw, Status: store.InboundApplied, Reason: p.Ignored,
				Timestamp: p.Msg.Timestamp, ReceivedAt: now,
			}
			if p.Ignored != "" {
				row.Status = store.InboundIgnored
			}
			dup, err := tx.InsertInbound(row)
			if err != nil {
				return err
			}
			switch {
			case dup:
				r.Duplicates++
				continue
			case p.Ignored != "":
				r.Ignored++
				if len(r.IgnoredReasons) < maxReasons {
					r.IgnoredReasons = append(r.IgnoredReasons, IgnoredMessage{Index: i, MessageID: p.MessageID, Reason: p.Ignored})
				}
				continue
			}
			warnings, err := a.apply(p, row.ID)
			if err != nil {
				return err
			}
			if len(warnings) > 0 {
				b, _ := json.Marshal(warnings)
				if err := tx.SetInboundOutcome(row.ID, store.InboundApplied, "", b); err != nil {
					return err
				}
				if len(r.Warnings) < maxReasons {
					r.Warnings = append(r.Warnings, WarnedMessage{Index: i, MessageID: p.MessageID, Warnings: warnings})
				}
			}
			r.Accepted++
		}
		r.Notify = a.notify
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// profileSet is where applying messages reads and writes profiles: the write's transaction, or
// for a dry run an in-memory overlay over the database.
type profileSet interface {
	// get returns the profile of id for the caller to change, or nil when there is none.
	get(id string) (*Profile, error)
	// put stores p; before is what get returned for it (nil for a new profile).
	put(p *Profile, before []store.ChannelValue) error
	// remove deletes the profile of id and its channels.
	remove(id string) error
}

// applier applies parsed messages of one destination.
type applier struct {
	tenantID      string
	destinationID string
	settings      Settings
	mapping       Mapping
	now           time.Time
	set           profileSet

	// tx is nil in a dry run, which changes profiles only. live is false in a replay, which never
	// creates workflow deliveries.
	tx           *store.Tx
	live         bool
	hasWorkflows bool
	notify       bool
	// workflows holds the ids of the workflows each event name triggers, read on the name's
	// first event of the hook call (not all the tenant's: a tenant may have thousands).
	workflows map[string][]string
}

// apply applies one message that parsed; rowID is its stored row.
func (a *applier) apply(p *Parsed, rowID int64) ([]Warning, error) {
	m := &p.Msg
	switch m.Type {
	case TypeIdentify:
		prof, isNew, before, err := a.load(m.UserID)
		if err != nil {
			return nil, err
		}
		warnings, changed := ApplyIdentify(prof, m.Traits, a.mapping)
		if isNew || changed {
			if err := a.save(prof, isNew, before); err != nil {
				return nil, err
			}
		}
		return warnings, a.created(m.UserID, isNew)
	case TypeGroup:
		prof, isNew, before, err := a.load(m.UserID)
		if err != nil {
			return nil, err
		}
		if changed := ApplyGroup(prof, m.GroupID); isNew || changed {
			if err := a.save(prof, isNew, before); err != nil {
				return nil, err
			}
		}
		return nil, a.created(m.UserID, isNew)
	case TypeAlias:
		return nil, a.alias(m.PreviousID, m.UserID)
	case TypeDelete:
		if err := a.set.remove(m.UserID); err != nil {
			return nil, err
		}
		if a.tx == nil {
			return nil, nil
		}
		if err := a.tx.EraseUser(a.tenantID, m.UserID, a.live); err != nil {
			return nil, err
		}
		return nil, a.tx.EraseInbound(a.tenantID, m.UserID, rowID)
	case TypeTrack, TypePage, TypeScreen:
		return nil, a.event(p, rowID)
	}
	return nil, nil
}

// load returns the profile of id to change: the stored one, or a new one.
func (a *applier) load(id string) (p *Profile, isNew bool, before []store.ChannelValue, err error) {
	p, err = a.set.get(id)
	if err != nil {
		return nil, false, nil, err
	}
	if p == nil {
		np := NewProfile(id, a.now)
		return &np, true, nil, nil
	}
	return p, false, channelIndex(p), nil
}

// save stamps and stores a changed profile.
func (a *applier) save(p *Profile, isNew bool, before []store.ChannelValue) error {
	p.UpdatedAt = a.now
	if isNew {
		p.CreatedAt = a.now
	}
	return a.set.put(p, before)
}

// created releases the workflow deliveries that waited for a profile that now exists.
func (a *applier) created(id string, isNew bool) error {
	if !isNew || a.tx == nil || !a.hasWorkflows {
		return nil
	}
	n, err := a.tx.ReleaseWaiting(a.now, a.tenantID, id)
	if n > 0 {
		a.notify = true
	}
	return err
}

// alias merges the profile of previous into the profile of user (SPEC §6.4) and moves
// previous's events and unsent workflow deliveries to user.
func (a *applier) alias(previous, user string) error {
	from, err := a.set.get(previous)
	if err != nil {
		return err
	}
	if from != nil {
		into, newInto, before, err := a.load(user)
		if err != nil {
			return err
		}
		if newInto {
			into.CreatedAt = from.CreatedAt
		}
		MergeAlias(into, *from)
		into.UpdatedAt = a.now
		if err := a.set.put(into, before); err != nil {
			return err
		}
		if err := a.set.remove(previous); err != nil {
			return err
		}
	}
	if a.tx == nil {
		return nil
	}
	if err := a.tx.MoveUser(a.tenantID, previous, user); err != nil {
		return err
	}
	if !a.live || !a.hasWorkflows {
		return nil
	}
	// Deliveries that waited for previous now wait for user; if user has a profile, they are due.
	exists, err := a.tx.ProfileExists(a.tenantID, user)
	if err != nil || !exists {
		return err
	}
	n, err := a.tx.ReleaseWaiting(a.now, a.tenantID, user)
	if n > 0 {
		a.notify = true
	}
	return err
}

// event stores a track, page or screen as an event and, live, queues the workflows it triggers.
func (a *applier) event(p *Parsed, rowID int64) error {
	if a.tx == nil {
		return nil
	}
	name, _ := EventName(p.Msg, a.settings.PrefixEvents)
	ts := p.Msg.Timestamp
	if ts.IsZero() {
		ts = a.now
	}
	e := &store.UserEvent{
		TenantID: a.tenantID, DestinationID: a.destinationID, DistinctID: p.DistinctID, MessageID: p.MessageID,
		Type: p.Msg.Type, Name: name, Properties: p.Props, Timestamp: ts, CreatedAt: a.now,
	}
	if err := a.tx.PutUserEvent(e); err != nil {
		return err
	}
	if !a.live || !a.hasWorkflows {
		return nil
	}
	ids, ok := a.workflows[name]
	if !ok {
		var err error
		if ids, err = a.tx.WorkflowsForEvent(a.tenantID, name); err != nil {
			return err
		}
		if a.workflows == nil {
			a.workflows = map[string][]string{}
		}
		a.workflows[name] = ids
	}
	if len(ids) == 0 {
		return nil
	}
	known, err := a.tx.ProfileExists(a.tenantID, p.DistinctID)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(delivery.WorkflowPayload{
		DistinctID: p.DistinctID,
		Event:      delivery.WorkflowEvent{Name: name, Properties: p.Props, Timestamp: ts, MessageID: p.MessageID},
	})
	if err != nil {
		return err
	}
	d := store.NewDelivery{
		TenantID: a.tenantID, RefID: rowID, MessageID: p.MessageID, Payload: payload, MaxAge: delivery.MaxAge,
	}
	if !known && a.settings.HoldFor > 0 {
		d.Reason, d.NotBefore = domain.ReasonWaitingForUser, a.now.Add(a.settings.HoldFor)
	}
	for _, id := range ids {
		d.OriginID = id
		if _, err := a.tx.InsertWorkflowDelivery(a.now, d, p.DistinctID); err != nil {
			return err
		}
	}
	a.notify = true
	return nil
}

// txProfiles reads and writes profiles in a write's transaction.
type txProfiles struct {
	tx       *store.Tx
	tenantID string
	// bodies holds the stored body of each profile read ahead (nil: it has none) and follows
	// every put and remove, so that a get of one of these ids needs no query.
	bodies map[string][]byte
}

// readProfiles returns the profile set of a hook call with the profiles its messages change
// read ahead in one query: for a 100-message body, one query instead of one per identify. With
// fewer than two such profiles, get reads the one by its own query.
func readProfiles(tx *store.Tx, tenantID string, msgs []Parsed) (*txProfiles, error) {
	var ids []string
	for i := range msgs {
		if m := &msgs[i].Msg; msgs[i].Ignored == "" {
			switch m.Type {
			case TypeIdentify, TypeGroup:
				ids = append(ids, m.UserID)
			case TypeAlias:
				ids = append(ids, m.UserID, m.PreviousID)
			}
		}
	}
	slices.Sort(ids)
	if ids = slices.Compact(ids); len(ids) < 2 {
		return &txProfiles{tx: tx, tenantID: tenantID}, nil // a point query of its own is cheaper
	}
	found, err := tx.ProfileBodies(tenantID, ids)
	if err != nil {
		return nil, err
	}
	bodies := make(map[string][]byte, len(ids))
	for _, id := range ids {
		bodies[id] = found[id]
	}
	return &txProfiles{tx: tx, tenantID: tenantID, bodies: bodies}, nil
}

func (t *txProfiles) get(id string) (*Profile, error) {
	body, ok := t.bodies[id]
	if !ok {
		row, err := t.tx.Profile(t.tenantID, id)
		if err != nil || row == nil {
			return nil, err
		}
		body = row.Body
	}
	if body == nil {
		return nil, nil
	}
	return DecodeProfile(body)
}

func (t *txProfiles) put(p *Profile, before []store.ChannelValue) error {
	after := channelIndex(p)
	if before != nil && slices.Equal(before, after) || before == nil && len(after) == 0 {
		after = nil // nothing to re-index
	}
	body := EncodeProfile(p)
	if err := t.tx.PutProfile(t.tenantID, store.ProfileRow{
		DistinctID: p.DistinctID, Body: body, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}, before == nil, after); err != nil {
		return err
	}
	if t.bodies != nil {
		t.bodies[p.DistinctID] = body
	}
	return nil
}

func (t *txProfiles) remove(id string) error {
	if err := t.tx.DeleteProfile(t.tenantID, id); err != nil {
		return err
	}
	if t.bodies != nil {
		t.bodies[id] = nil
	}
	return nil
}

// memProfiles is a dry run's profile set: it reads through to the database and keeps every
// change in memory, so nothing is written.
type memProfiles struct {
	ctx      context.Context
	db       Profiles
	tenantID string
	changed  map[string][]byte // distinct id → encoded profile; nil: removed
}

func (m *memProfiles) get(id string) (*Profile, error) {
	b, ok := m.changed[id]
	if !ok {
		row, err := m.db.Profile(m.ctx, m.tenantID, id)
		if err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
		b = row.Body
	}
	if b == nil {
		return nil, nil
	}
	return DecodeProfile(b) // a copy: the caller's changes stay its own until put
}

func (m *memProfiles) put(p *Profile, _ []store.ChannelValue) error {
	m.changed[p.DistinctID] = EncodeProfile(p)
	return nil
}

func (m *memProfiles) remove(id string) error {
	m.changed[id] = nil
	return nil
}

// current returns the encoded profiles of ids as the dry run left them (absent: none).
func (m *memProfiles) current(ids []string) (map[string][]byte, error) {
	var unchanged []string
	out := map[string][]byte{}
	for _, id := range ids {
		if b, ok := m.changed[id]; !ok {
			unchanged = append(unchanged, id)
		} else if b != nil {
			out[id] = b
		}
	}
	stored, err := m.db.ProfileBodies(m.ctx, m.tenantID, unchanged)
	if err != nil {
		return nil, err
	}
	maps.Copy(out, stored)
	return out, nil
}
