package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// destFixture is a tenant with one destination.
func destFixture(t *testing.T, db *store.DB) (*store.Tenant, *store.Destination) {
	t.Helper()
	ctx := context.Background()
	tn, err := db.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	d := &store.Destination{ID: domain.NewID("dst_"), TenantID: tn.ID, Name: "Segment", Settings: []byte(`{}`),
		Key: store.DestinationKey{APIKeyHash: "sha256:one", APIKeyHint: "…one", SecretEnc: []byte("sealed-1"), SecretHint: "…s1"}}
	if err := db.CreateDestination(ctx, d); err != nil {
		t.Fatal(err)
	}
	return tn, d
}

func TestDestinationKeyRotationOverlap(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, d := destFixture(t, db)
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	db.Clock = func() time.Time { return now }

	k2 := store.DestinationKey{APIKeyHash: "sha256:two", APIKeyHint: "…two", SecretEnc: []byte("sealed-2"), SecretHint: "…s2"}
	until, err := db.RotateDestinationKey(ctx, tn.ID, d.ID, &k2, 24*time.Hour)
	if err != nil || !until.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("rotate: %v, until %v", err, until)
	}
	h, err := db.DestinationForHook(ctx, d.ID)
	if err != nil || len(h.Keys) != 2 || h.Keys[0].APIKeyHash != "sha256:two" || h.Keys[1].APIKeyHash != "sha256:one" {
		t.Fatalf("within the overlap both keys must work, the new one first: %+v %v", h, err)
	}
	got, err := db.Destination(ctx, tn.ID, d.ID)
	if err != nil || got.Key.APIKeyHint != "…two" {
		t.Fatalf("the current key is the new one: %+v %v", got, err)
	}

	now = now.Add(24*time.Hour + time.Millisecond)
	h, err = db.DestinationForHook(ctx, d.ID)
	if err != nil || len(h.Keys) != 1 || h.Keys[0].APIKeyHash != "sha256:two" {
		t.Fatalf("after the overlap only the new key works: %+v %v", h, err)
	}

	if _, err := db.RotateDestinationKey(ctx, "ten_other", d.ID, &k2, time.Hour); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("another tenant rotating: %v", err)
	}
	if _, err := db.DestinationForHook(ctx, "dst_missing"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("missing destination: %v", err)
	}
}

func TestInboundDedupeKeepsDuplicatesAsBodylessRows(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, d := destFixture(t, db)
	insert := func(msgID string) (*store.InboundMessage, bool) {
		m := &store.InboundMessage{TenantID: tn.ID, DestinationID: d.ID, MessageID: msgID, Type: "track", DistinctID: "u1",
			Body: []byte(`{"type":"track"}`), Status: store.InboundApplied, ReceivedAt: db.Now()}
		var dup bool
		err := db.Update(ctx, func(tx *store.Tx) (err error) {
			dup, err = tx.InsertInbound(m)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m, dup
	}
	first, dup := insert("m1")
	if dup || first.ID == 0 {
		t.Fatalf("first insert: dup=%v id=%d", dup, first.ID)
	}
	second, dup := insert("m1")
	if !dup || second.ID == first.ID || second.Status != store.InboundDuplicate {
		t.Fatalf("second insert: dup=%v %+v", dup, second)
	}
	if third, dup := insert("m1"); !dup || third.ID == second.ID {
		t.Fatalf("a third copy is another duplicate row: dup=%v", dup)
	}
	rows, total, err := db.InboundMessages(ctx, store.InboundFilter{DestinationID: d.ID, Limit: 10})
	if err != nil || total != 3 || rows[0].Status != store.InboundDuplicate || rows[0].Body != nil || rows[2].Status != store.InboundApplied {
		t.Fatalf("list newest first: %v total %d %+v", err, total, rows)
	}
	replay, err := db.InboundForReplay(ctx, store.InboundFilter{DestinationID: d.ID, Limit: 10})
	if err != nil || len(replay) != 1 || replay[0].ID != first.ID {
		t.Fatalf("replay sees only the original: %+v %v", replay, err)
	}
}

func TestDestinationDataGoesWithTheTenant(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, d := destFixture(t, db)
	w := &store.Workflow{ID: domain.NewID("wfl_"), TenantID: tn.ID, Name: "w", Event: "E", URL: "http://x", SecretEnc: []byte("s"), SecretHint: "…s"}
	if err := db.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	err := db.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.InsertInbound(&store.InboundMessage{TenantID: tn.ID, DestinationID: d.ID, MessageID: "m",
			Body: []byte(`{}`), Status: store.InboundApplied, ReceivedAt: db.Now()}); err != nil {
			return err
		}
		if err := tx.PutProfile(tn.ID, store.ProfileRow{DistinctID: "u", Body: []byte(`{}`), CreatedAt: db.Now(), UpdatedAt: db.Now()},
			true, []store.ChannelValue{{Channel: "$email", Value: "u@example.com"}}); err != nil {
			return err
		}
		if err := tx.PutUserEvent(&store.UserEvent{TenantID: tn.ID, DestinationID: d.ID, DistinctID: "u", MessageID: "m",
			Type: "track", Name: "E", Properties: []byte(`{}`), Timestamp: db.Now(), CreatedAt: db.Now()}); err != nil {
			return err
		}
		_, err := tx.InsertWorkflowDelivery(db.Now(), store.NewDelivery{TenantID: tn.ID, OriginID: w.ID, MessageID: "m",
			Payload: []byte(`{"distinct_id":"u"}`), MaxAge: time.Hour}, "u")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTenant(ctx, tn.ID); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"destinations", "destination_keys", "dest_messages", "profiles", "profile_channels", "user_events", "workflows", "deliveries"} {
		var n int
		if err := db.Reader().QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left after the tenant was deleted (%v)", table, n, err)
		}
	}
}

func TestAliasMovesWaitingDeliveriesAndTheirPayload(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, _ := destFixture(t, db)
	w := &store.Workflow{ID: domain.NewID("wfl_"), TenantID: tn.ID, Name: "w", Event: "E", URL: "http://x", SecretEnc: []byte("s"), SecretHint: "…s"}
	if err := db.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	later := db.Now().Add(time.Hour)
	err := db.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.InsertWorkflowDelivery(db.Now(), store.NewDelivery{TenantID: tn.ID, OriginID: w.ID, MessageID: "m",
			Payload: []byte(`{"distinct_id":"anon-1","event":{"name":"E"}}`), Reason: domain.ReasonWaitingForUser, NotBefore: later, MaxAge: time.Hour}, "anon-1")
		if err != nil {
			return err
		}
		if err := tx.MoveUser(tn.ID, "anon-1", "user-1"); err != nil {
			return err
		}
		if n, err := tx.ReleaseWaiting(db.Now(), tn.ID, "anon-1"); err != nil || n != 0 {
			t.Errorf("released %d under the old id (%v)", n, err)
		}
		n, err := tx.ReleaseWaiting(db.Now(), tn.ID, "user-1")
		if n != 1 {
			t.Errorf("released %d under the new id, want 1", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := db.Deliveries(ctx, store.DeliveryFilter{TenantID: tn.ID, Limit: 10})
	if err != nil || len(ds) != 1 {
		t.Fatalf("%v %d", err, len(ds))
	}
	var p struct {
		DistinctID string `json:"distinct_id"`
		Event      struct{ Name string }
	}
	if err := json.Unmarshal(ds[0].Payload, &p); err != nil || p.DistinctID != "user-1" || p.Event.Name != "E" {
		t.Fatalf("payload after the move: %s (%v)", ds[0].Payload, err)
	}
	if ds[0].Reason != "" || ds[0].NextAt.After(db.Now()) {
		t.Fatalf("released delivery: reason %q next %v", ds[0].Reason, ds[0].NextAt)
	}
}

func TestProfilesFilterAndPage(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, _ := destFixture(t, db)
	base := db.Now().UTC().Truncate(time.Millisecond)
	err := db.Update(ctx, func(tx *store.Tx) error {
		for i, id := range []string{"a", "b", "c"} {
			ch := []store.ChannelValue{{Channel: "$email", Value: id + "@example.com"}, {Channel: "$sms", Value: "+1555010000" + string(rune('0'+i))}}
			at := base.Add(time.Duration(i) * time.Second)
			if err := tx.PutProfile(tn.ID, store.ProfileRow{DistinctID: id, Body: []byte(`{"distinct_id":"` + id + `"}`), CreatedAt: at, UpdatedAt: at}, true, ch); err != nil {
				return err
			}
		}
		// Re-putting without channels keeps the index; with channels replaces it.
		if err := tx.PutProfile(tn.ID, store.ProfileRow{DistinctID: "a", Body: []byte(`{}`), CreatedAt: base, UpdatedAt: base}, false, nil); err != nil {
			return err
		}
		return tx.PutProfile(tn.ID, store.ProfileRow{DistinctID: "c", Body: []byte(`{}`), CreatedAt: base.Add(2 * time.Second), UpdatedAt: base},
			false, []store.ChannelValue{{Channel: "$email", Value: "new-c@example.com"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	find := func(f store.ProfileFilter) []string {
		f.TenantID = tn.ID
		rows, total, err := db.Profiles(ctx, f, store.Page{Limit: 10})
		if err != nil || total != len(rows) {
			t.Fatalf("%v total %d rows %d", err, total, len(rows))
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.DistinctID)
		}
		return ids
	}
	if got := find(store.ProfileFilter{}); len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Errorf("all, oldest first: %v", got)
	}
	if got := find(store.ProfileFilter{Channels: []string{"$email"}, Values: []string{"a@example.com"}}); len(got) != 1 || got[0] != "a" {
		t.Errorf("by email: %v", got)
	}
	if got := find(store.ProfileFilter{Values: []string{"c@example.com"}}); len(got) != 0 {
		t.Errorf("a replaced channel value still matches: %v", got)
	}
	if got := find(store.ProfileFilter{Channels: []string{"$email"}, Values: []string{"+15550100001"}}); len(got) != 0 {
		t.Errorf("a phone matched as an email: %v", got)
	}
	if got := find(store.ProfileFilter{Values: []string{"+15550100001"}}); len(got) != 1 || got[0] != "b" {
		t.Errorf("by any channel: %v", got)
	}
	rows, total, err := db.Profiles(ctx, store.ProfileFilter{TenantID: tn.ID}, store.Page{Limit: 2, AfterTime: base, AfterID: "a"})
	if err != nil || total != 3 || len(rows) != 2 || rows[0].DistinctID != "b" {
		t.Fatalf("second page: %v %d %+v", err, total, rows)
	}
}

func TestPruneInboundFollowsTenantRetention(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, d := destFixture(t, db)
	received := db.Now().UTC()
	err := db.Update(ctx, func(tx *store.Tx) error {
		for _, id := range []string{"m1", "m2"} {
			if _, err := tx.InsertInbound(&store.InboundMessage{TenantID: tn.ID, DestinationID: d.ID, MessageID: id,
				Body: []byte(`{}`), Status: store.InboundApplied, ReceivedAt: received}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.PruneInbound(ctx, received.Add(89*24*time.Hour), 10); err != nil || n != 0 {
		t.Fatalf("within the default 90 days: pruned %d (%v)", n, err)
	}
	if n, err := db.PruneInbound(ctx, received.Add(91*24*time.Hour), 1); err != nil || n != 1 {
		t.Fatalf("after 90 days, limit 1: pruned %d (%v)", n, err)
	}
	if n, err := db.PruneInbound(ctx, received.Add(91*24*time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("the rest: pruned %d (%v)", n, err)
	}
}
