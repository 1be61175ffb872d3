package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// segmentState is what GET …/segment answers about the tenant's lane.
type segmentState struct {
	Status           string     `json:"status"`
	StatusSince      *time.Time `json:"status_since"`
	StatusReason     *string    `json:"status_reason"`
	Undelivered      int        `json:"undelivered"`
	OldestAt         *time.Time `json:"oldest_undelivered_at"`
	OldestAge        float64    `json:"oldest_undelivered_age_seconds"`
	SecondsUntilDead *float64   `json:"seconds_until_dead"`
}

func (a *TestApp) segmentState(token, tid string) segmentState {
	a.t.Helper()
	status, body, _ := a.Do("GET", "/api/v1/tenants/"+tid+"/segment", token, nil)
	if status != 200 {
		a.t.Fatalf("GET segment: %d %s", status, body)
	}
	var s segmentState
	if err := json.Unmarshal(body, &s); err != nil {
		a.t.Fatal(err)
	}
	return s
}

// TestSegmentLaneStatusAndTimeToDead: GET …/segment shows a rejected write key and since when,
// the oldest undelivered delivery's age and the time left before it turns dead; a retry request
// or a new key makes the lane active again.
func TestSegmentLaneStatusAndTimeToDead(t *testing.T) {
	app := NewTestApp(t)
	tn := app.Tenant("A")
	tok := app.TenantToken(tn)
	app.Secret("wk_lane_status_0001")
	if status, body, _ := app.Do("PUT", "/api/v1/tenants/"+tn.ID+"/segment", tok, `{"write_key": "wk_lane_status_0001"}`); status != 200 {
		t.Fatalf("PUT segment: %d %s", status, body)
	}
	if s := app.segmentState(tok, tn.ID); s.Status != "active" || s.StatusSince != nil || s.Undelivered != 0 || s.SecondsUntilDead != nil {
		t.Fatalf("fresh lane: %+v", s)
	}
	created := time.Now().Add(-2 * time.Hour)
	err := app.DB.Write(context.Background(), func(tx *sql.Tx) error {
		_, err := store.InsertDelivery(tx, created, store.NewDelivery{TenantID: tn.ID, Target: "segment", OriginID: "src_x",
			MessageID: "sp-1", Payload: []byte(`{}`), MaxAge: 72 * time.Hour})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := app.DB.SegmentKey(context.Background(), tn.ID)
	if err := app.DB.RejectSegmentKey(context.Background(), tn.ID, k.Version, "401 Unauthorized"); err != nil {
		t.Fatal(err)
	}
	s := app.segmentState(tok, tn.ID)
	if s.Status != "write_key_rejected" || s.StatusSince == nil || s.StatusReason == nil || *s.StatusReason != "401 Unauthorized" {
		t.Fatalf("rejected lane: %+v", s)
	}
	if s.Undelivered != 1 || s.OldestAge < 7190 || s.OldestAge > 7300 || s.SecondsUntilDead == nil ||
		*s.SecondsUntilDead < 70*3600-100 || *s.SecondsUntilDead > 70*3600+10 {
		t.Fatalf("time to dead of a 2 h old delivery with 72 h to live: %+v (%v s left)", s, *s.SecondsUntilDead)
	}
	if status, body, _ := app.Do("POST", "/api/v1/tenants/"+tn.ID+"/deliveries/retry", tok, `{"status": "failed"}`); status != 200 {
		t.Fatalf("retry failed: %d %s", status, body)
	}
	if s := app.segmentState(tok, tn.ID); s.Status != "active" || s.StatusSince != nil {
		t.Fatalf("after a retry request: %+v", s)
	}
	app.DB.RejectSegmentKey(context.Background(), tn.ID, k.Version, "403 Forbidden")
	app.Secret("wk_lane_status_0002")
	if status, body, _ := app.Do("PUT", "/api/v1/tenants/"+tn.ID+"/segment", tok, `{"write_key": "wk_lane_status_0002"}`); status != 200 {
		t.Fatalf("PUT segment: %d %s", status, body)
	}
	if s := app.segmentState(tok, tn.ID); s.Status != "active" || s.StatusSince != nil {
		t.Fatalf("after a new key: %+v", s)
	}
}
