package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestWorkflowFiresOnceWithTheRecipientsChannels(t *testing.T) {
	app := newDestApp(t)
	rcv := newWorkflowReceiver(t)
	wid := app.workflow(rcv, "segment : Order Completed")
	other := newWorkflowReceiver(t)
	app.workflow(other, "Order Completed") // the unprefixed name does not match a prefixed event
	d := app.destination(`{"name": "Segment", "prefix_events": true}`)
	app.mustHook(d, `{"type": "identify", "userId": "u1", "messageId": "i1",
		"traits": {"email": "u1@example.com", "phone": "+15550100001", "language": "de", "plan": "pro"}}`)
	app.mustHook(d, `{"type": "track", "userId": "u1", "messageId": "order-77", "event": "Order Completed",
		"properties": {"total": 42.5, "currency": "EUR"}, "timestamp": "2025-03-01T10:00:00Z"}`)

	waitFor(t, "the workflow POST", func() bool { return len(rcv.accepted()) == 1 })
	waitFor(t, "the delivery to be recorded", func() bool {
		ds := app.workflowDeliveries()
		return len(ds) == 1 && ds[0].Status == "delivered"
	})
	posts := rcv.all()
	if len(posts) != 1 || len(other.all()) != 0 {
		t.Fatalf("%d POSTs to the workflow, %d to the other; want 1 and 0", len(posts), len(other.all()))
	}
	p := posts[0]
	if !p.SignatureOK || p.IdempotencyKey != "order-77" {
		t.Fatalf("signature ok=%v, Idempotency-Key %q", p.SignatureOK, p.IdempotencyKey)
	}
	if p.Body.Workflow != "wf segment : Order Completed" || p.Body.WorkflowID != wid || p.Body.Event.Name != "segment : Order Completed" ||
		p.Body.Event.MessageID != "order-77" || p.Body.Event.Timestamp.Format("2006-01-02T15:04:05Z") != "2025-03-01T10:00:00Z" ||
		fmt.Sprint(p.Body.Event.Properties) != "map[currency:EUR total:42.5]" {
		t.Fatalf("body: %+v", p.Body)
	}
	r := p.Body.Recipient
	if r["distinct_id"] != "u1" || fmt.Sprint(r["$email"]) != "[u1@example.com]" || fmt.Sprint(r["$sms"]) != "[+15550100001]" ||
		r["$preferred_language"] != "de" || r["properties"].(map[string]any)["plan"] != "pro" {
		t.Fatalf("recipient: %v", r)
	}
	if _, ok := r["created_at"]; ok {
		t.Errorf("recipient carries profile timestamps: %v", r)
	}
}

func TestWorkflowReceiverDownThenUpDeliversOnce(t *testing.T) {
	app := newDestApp(t)
	rcv := newWorkflowReceiver(t)
	rcv.answer = func(n int) string { // down (connection dropped), then overloaded, then up
		switch {
		case n < 2:
			return "close"
		case n < 4:
			return "503"
		}
		return "200"
	}
	app.workflow(rcv, "Signed Up")
	d := app.destination(`{"name": "Segment"}`)
	app.mustHook(d, `[{"type": "identify", "userId": "u", "traits": {"email": "u@example.com"}},
		{"type": "track", "userId": "u", "messageId": "su-1", "event": "Signed Up"}]`)
	waitFor(t, "delivery after the receiver came back", func() bool {
		ds := app.workflowDeliveries()
		return len(ds) == 1 && ds[0].Status == "delivered"
	})
	posts := rcv.all()
	if len(rcv.accepted()) != 1 || len(posts) != 5 {
		t.Fatalf("%d POSTs, %d accepted; want 5 and 1", len(posts), len(rcv.accepted()))
	}
	for _, p := range posts {
		if p.IdempotencyKey != "su-1" || !p.SignatureOK {
			t.Fatalf("a retry changed its key or signature: %+v", p)
		}
	}
	if ds := app.workflowDeliveries(); ds[0].Attempts != 5 {
		t.Fatalf("attempts = %d, want 5", ds[0].Attempts)
	}
}

func TestWorkflowTrackBeforeIdentifyWaitsThenFires(t *testing.T) {
	app := newDestApp(t)
	rcv := newWorkflowReceiver(t)
	app.workflow(rcv, "Signed Up")
	d := app.destination(`{"name": "Segment", "hold_for": "10m"}`)
	app.mustHook(d, `{"type": "track", "userId": "late", "messageId": "t1", "event": "Signed Up"}`)

	ds := app.workflowDeliveries()
	if len(ds) != 1 || ds[0].Status != "pending" || ds[0].Reason != "waiting_for_user" {
		t.Fatalf("before the identify: %+v", ds)
	}
	// The API shows the held delivery under SPEC §6.4's name, and filters by it.
	status, body, _ := app.Do("GET", app.path("/deliveries?target=workflow&status=waiting_for_user"), app.Token, nil)
	if status != 200 || !strings.Contains(string(body), `"status":"waiting_for_user"`) || !strings.Contains(string(body), `"total_count":1`) {
		t.Fatalf("deliveries waiting for their user: %d %s", status, body)
	}
	status, body, _ = app.Do("GET", app.path("/users/late/events"), app.Token, nil)
	if status != 200 || !strings.Contains(string(body), `"name":"Signed Up"`) {
		t.Fatalf("the event of a user not yet identified is listed: %d %s", status, body)
	}
	if len(rcv.all()) != 0 {
		t.Fatal("the workflow fired before the identify")
	}

	app.mustHook(d, `{"type": "identify", "userId": "late", "traits": {"email": "late@example.com", "whatsapp": "+919876543210"}}`)
	waitFor(t, "the released delivery", func() bool { return len(rcv.accepted()) == 1 })
	r := rcv.accepted()[0].Body.Recipient
	if fmt.Sprint(r["$email"]) != "[late@example.com]" || fmt.Sprint(r["$whatsapp"]) != "[+919876543210]" {
		t.Fatalf("the recipient lacks what the identify brought: %v", r)
	}
}

func TestWorkflowFiresAfterHoldForWithoutIdentify(t *testing.T) {
	app := newDestApp(t)
	rcv := newWorkflowReceiver(t)
	app.workflow(rcv, "Signed Up")
	d := app.destination(`{"name": "Segment", "hold_for": "200ms"}`)
	app.mustHook(d, `{"type": "track", "anonymousId": "anon-9", "messageId": "t1", "event": "Signed Up"}`)
	if ds := app.workflowDeliveries(); len(ds) != 1 || ds[0].Reason != "waiting_for_user" {
		t.Fatalf("the track did not wait: %+v", ds)
	}
	waitFor(t, "the delivery after hold_for", func() bool { return len(rcv.accepted()) == 1 })
	r := rcv.accepted()[0].Body.Recipient
	if r["distinct_id"] != "anon-9" || fmt.Sprint(r["$email"]) != "[]" {
		t.Fatalf("recipient without a profile: %v", r)
	}
}

func TestWorkflowAliasReleasesWhatWaitedForTheAnonymousID(t *testing.T) {
	app := newDestApp(t)
	rcv := newWorkflowReceiver(t)
	app.workflow(rcv, "Signed Up")
	d := app.destination(`{"name": "Segment", "hold_for": "10m"}`)
	app.mustHook(d, `[{"type": "track", "anonymousId": "anon-1", "messageId": "t1", "event": "Signed Up"},
		{"type": "identify", "userId": "user-1", "traits": {"email": "user-1@example.com"}},
		{"type": "alias", "userId": "user-1", "previousId": "anon-1"}]`)
	waitFor(t, "the delivery re-pointed to the user", func() bool { return len(rcv.accepted()) == 1 })
	if r := rcv.accepted()[0].Body.Recipient; r["distinct_id"] != "user-1" || fmt.Sprint(r["$email"]) != "[user-1@example.com]" {
		t.Fatalf("recipient: %v", r)
	}
}

func TestWorkflowChangesApplyToRetries(t *testing.T) {
	app := newDestApp(t)
	broken := newWorkflowReceiver(t)
	broken.answer = func(int) string { return "503" }
	wid := app.workflow(broken, "Signed Up")
	d := app.destination(`{"name": "Segment", "hold_for": "0s"}`)
	app.mustHook(d, `{"type": "track", "userId": "u", "messageId": "t1", "event": "Signed Up"}`)
	waitFor(t, "a failed attempt", func() bool { return len(broken.all()) >= 1 })
	fixed := newWorkflowReceiver(t)
	fixed.secret = "a-new-secret-of-enough-length"
	app.Secret(fixed.secret)
	status, body, _ := app.Do("PATCH", app.path("/workflows/"+wid), app.Token, map[string]string{"url": fixed.URL, "secret": fixed.secret})
	if status != 200 || strings.Contains(string(body), fixed.secret) {
		t.Fatalf("PATCH: %d %s", status, body)
	}
	waitFor(t, "the retry to the new URL", func() bool { return len(fixed.accepted()) == 1 })
	if !fixed.accepted()[0].SignatureOK {
		t.Fatal("the retry was not signed with the new secret")
	}
}

func TestReplayAfterMappingChange(t *testing.T) {
	app := newDestApp(t)
	rcv := newWorkflowReceiver(t)
	app.workflow(rcv, "Signed Up")
	d := app.destination(`{"name": "Segment"}`)
	app.mustHook(d, `[{"type": "identify", "userId": "a", "traits": {"email": "a@example.com", "mobile": "+15550100001"}},
		{"type": "identify", "userId": "b", "traits": {"mobile": "+15550100002"}},
		{"type": "identify", "userId": "c", "traits": {"email": "c@example.com"}},
		{"type": "track", "userId": "a", "messageId": "t1", "event": "Signed Up"}]`)
	waitFor(t, "the first workflow delivery", func() bool { return len(rcv.accepted()) == 1 })
	if p := app.profile("a"); fmt.Sprint(p["$sms"]) != "[]" {
		t.Fatalf("mobile is not mapped yet: %v", p)
	}
	if s, body, _ := app.Do("PATCH", app.path("/destinations/"+d.ID), app.Token, `{"channel_map": {"$sms": "mobile"}, "prefix_events": true}`); s != 200 {
		t.Fatalf("PATCH: %d %s", s, body)
	}
	before := app.profile("a")

	status, body, _ := app.Do("POST", app.path("/destinations/"+d.ID+"/replay"), app.Token, `{"dry_run": true}`)
	var res struct {
		DryRun          bool `json:"dry_run"`
		Messages        int  `json:"messages"`
		ProfilesChanged int  `json:"profiles_changed"`
		Examples        []struct {
			DistinctID string         `json:"distinct_id"`
			Before     map[string]any `json:"before"`
			After      map[string]any `json:"after"`
		} `json:"examples"`
	}
	if status != 200 || json.Unmarshal(body, &res) != nil || !res.DryRun || res.Messages != 4 || res.ProfilesChanged != 2 || len(res.Examples) != 2 {
		t.Fatalf("dry run: %d %s", status, body)
	}
	if ex := res.Examples[0]; ex.DistinctID != "a" || fmt.Sprint(ex.Before["$sms"]) != "[]" || fmt.Sprint(ex.After["$sms"]) != "[+15550100001]" {
		t.Fatalf("example: %+v", ex)
	}
	jsonEqual(t, app.profile("a"), mustJSON(before)) // the dry run changed nothing
	if got := app.events("a"); got[0] != "Signed Up" {
		t.Fatalf("the dry run renamed events: %v", got)
	}

	status, body, _ = app.Do("POST", app.path("/destinations/"+d.ID+"/replay"), app.Token, `{"types": ["identify", "track"]}`)
	if status != 200 || !strings.Contains(string(body), `"profiles_changed":2`) || !strings.Contains(string(body), `"dry_run":false`) {
		t.Fatalf("replay: %d %s", status, body)
	}
	if p := app.profile("a"); fmt.Sprint(p["$sms"]) != "[+15550100001]" || fmt.Sprint(p["$email"]) != "[a@example.com]" {
		t.Fatalf("a after replay: %v", p)
	}
	if p := app.profile("b"); fmt.Sprint(p["$sms"]) != "[+15550100002]" {
		t.Fatalf("b after replay: %v", p)
	}
	if got := app.events("a"); len(got) != 1 || got[0] != "segment : Signed Up" {
		t.Fatalf("events after replay with the prefix on: %v", got)
	}
	// Idempotent, and it never fires workflows again.
	status, body, _ = app.Do("POST", app.path("/destinations/"+d.ID+"/replay"), app.Token, `{}`)
	if status != 200 || !strings.Contains(string(body), `"profiles_changed":0`) {
		t.Fatalf("second replay: %d %s", status, body)
	}
	if ds := app.workflowDeliveries(); len(ds) != 1 {
		t.Fatalf("replay created workflow deliveries: %d", len(ds))
	}
	// A range that holds nothing replays nothing.
	status, body, _ = app.Do("POST", app.path("/destinations/"+d.ID+"/replay"), app.Token, `{"to": "2000-01-01T00:00:00Z", "dry_run": true}`)
	if status != 200 || !strings.Contains(string(body), `"messages":0`) {
		t.Fatalf("empty range: %d %s", status, body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
