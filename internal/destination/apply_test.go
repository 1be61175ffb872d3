package destination

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// serviceFixture is a database with a tenant and one destination with the given settings.
func serviceFixture(tb testing.TB, settings Settings) (*Service, string) {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(tb.TempDir(), "switchboard.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	tn, err := db.CreateTenant(ctx, "t")
	if err != nil {
		tb.Fatal(err)
	}
	d := &store.Destination{ID: domain.NewID("dst_"), TenantID: tn.ID, Name: "d", Settings: settings.Encode(),
		Key: store.DestinationKey{APIKeyHash: "x", APIKeyHint: "x", SecretEnc: []byte("x"), SecretHint: "x"}}
	if err := db.CreateDestination(ctx, d); err != nil {
		tb.Fatal(err)
	}
	w := &store.Workflow{ID: domain.NewID("wfl_"), TenantID: tn.ID, Name: "w", Event: "E", URL: "http://127.0.0.1:9/", SecretEnc: []byte("s"), SecretHint: "s"}
	if err := db.CreateWorkflow(ctx, w); err != nil {
		tb.Fatal(err)
	}
	return &Service{DB: db}, d.ID
}

// FuzzReceive feeds arbitrary hook bodies through everything the hook does after it
// authenticated the caller: split, parse, store and apply in one write. Whatever the body,
// Receive never fails, and every message is counted exactly once.
func FuzzReceive(f *testing.F) {
	for _, name := range []string{"suprsend_identify_language.json", "suprsend_identify_channels.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`[]`, `{}`, `{"batch":[1,{"type":"track","userId":"u","event":"E"}]}`,
		`[{"type":"track","userId":"u","event":"E","messageId":"m"},{"type":"identify","userId":"u","traits":{"email":"u@x.io"}},{"type":"track","userId":"u","event":"E","messageId":"m"}]`,
		`[{"type":"alias","userId":"a","previousId":"b"},{"type":"group","userId":"a","groupId":"g"},{"type":"delete","userId":"a"}]`,
		`{"type":"identify","userId":"u","traits":{"email":["a@b.co","x"],"phone":"+1 (555) 010-0000","language":"HI","timezone":"../x","$groups":7}}`,
		`{"type":"page","anonymousId":"a","properties":{"name":"Home"}}`,
		`{"type":"identify","userId":"` + string(make([]byte, 300)) + `"}`,
	} {
		f.Add([]byte(s))
	}
	settings := DefaultSettings()
	settings.HoldFor = 0
	svc, did := serviceFixture(f, settings)
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, _, err := SplitBody(body)
		if err != nil {
			return
		}
		r, err := svc.Receive(context.Background(), did, Prepare(msgs))
		if err != nil {
			t.Fatalf("Receive(%q): %v", body, err)
		}
		if r.Accepted+r.Duplicates+r.Ignored != len(msgs) {
			t.Fatalf("%d messages, receipt %+v", len(msgs), r)
		}
		for _, ig := range r.IgnoredReasons {
			if ig.Reason == "" || ig.MessageID == "" {
				t.Fatalf("ignored without reason or id: %+v", ig)
			}
		}
	})
}

// Applying the same messages again through replay changes nothing, and a replay never adds
// workflow deliveries.
func TestReplayIsIdempotentAndFiresNothing(t *testing.T) {
	svc, did := serviceFixture(t, DefaultSettings())
	ctx := context.Background()
	var msgs []json.RawMessage
	for i := range 20 {
		msgs = append(msgs, json.RawMessage(fmt.Sprintf(`{"type":"identify","userId":"u%d","messageId":"i%d","traits":{"email":"u%d@example.com","mobile":"+1555010%04d"}}`, i%7, i, i, i)))
		msgs = append(msgs, json.RawMessage(fmt.Sprintf(`{"type":"track","userId":"u%d","messageId":"t%d","event":"E"}`, i%7, i)))
	}
	msgs = append(msgs, json.RawMessage(`{"type":"alias","userId":"u1","previousId":"u2","messageId":"a"}`))
	if _, err := svc.Receive(ctx, did, Prepare(msgs)); err != nil {
		t.Fatal(err)
	}
	count := func() (deliveries, events int) {
		svc.DB.(*store.DB).Reader().QueryRow(`SELECT COUNT(*) FROM deliveries`).Scan(&deliveries)
		svc.DB.(*store.DB).Reader().QueryRow(`SELECT COUNT(*) FROM user_events`).Scan(&events)
		return
	}
	d0, e0 := count()
	d, err := svc.DB.Destination(ctx, mustTenant(t, svc), did)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		res, err := svc.Replay(ctx, d.TenantID, did, ReplayRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Messages != len(msgs) || res.ProfilesChanged != 0 {
			t.Fatalf("replay %d with an unchanged mapping: %+v", i, res)
		}
	}
	if d1, e1 := count(); d1 != d0 || e1 != e0 {
		t.Fatalf("replay changed deliveries %d→%d or events %d→%d", d0, d1, e0, e1)
	}
}

func mustTenant(t *testing.T, svc *Service) string {
	t.Helper()
	var id string
	if err := svc.DB.(*store.DB).Reader().QueryRow(`SELECT id FROM tenants`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// One hook call reads the tenant's workflows once; each event still fires exactly the
// workflows of its own name, every one of them, and no other.
func TestEachEventFiresTheWorkflowsOfItsName(t *testing.T) {
	svc, did := serviceFixture(t, DefaultSettings()) // its workflow "w" fires on E
	ctx := context.Background()
	db := svc.DB.(*store.DB)
	tenantID := mustTenant(t, svc)
	for _, w := range []struct{ name, event string }{{"w2", "E"}, {"f", "F"}} {
		if err := db.CreateWorkflow(ctx, &store.Workflow{ID: domain.NewID("wfl_"), TenantID: tenantID, Name: w.name, Event: w.event,
			URL: "http://127.0.0.1:9/", SecretEnc: []byte("s"), SecretHint: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := []json.RawMessage{
		json.RawMessage(`{"type":"track","userId":"u","messageId":"1","event":"E"}`),
		json.RawMessage(`{"type":"track","userId":"u","messageId":"2","event":"G"}`),
		json.RawMessage(`{"type":"track","userId":"u","messageId":"3","event":"F"}`),
		json.RawMessage(`{"type":"track","userId":"u","messageId":"4","event":"E"}`),
	}
	if _, err := svc.Receive(ctx, did, Prepare(msgs)); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Reader().Query(`SELECT w.name, group_concat(d.message_id, ',') FROM deliveries d JOIN workflows w ON w.id = d.origin_id
		GROUP BY w.name ORDER BY w.name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var name, ids string
		if err := rows.Scan(&name, &ids); err != nil {
			t.Fatal(err)
		}
		got[name] = ids
	}
	want := map[string]string{"w": "1,4", "w2": "1,4", "f": "3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries by workflow = %v, want %v", got, want)
	}
}

// A hook body reads the profiles it changes ahead, in one query, and keeps that copy in step
// with its own writes. Whatever the order of identify, group, alias and delete calls on the same
// users inside one body, the profiles end as they do when each message comes in a call of its own.
func TestOneBodyLeavesTheProfilesOfOneCallPerMessage(t *testing.T) {
	ctx := context.Background()
	msgs := []json.RawMessage{
		json.RawMessage(`{"type":"identify","userId":"u1","messageId":"1","traits":{"email":"a@example.com","plan":"free"}}`),
		json.RawMessage(`{"type":"identify","userId":"u2","messageId":"2","traits":{"email":"b@example.com","phone":"+14155550100"}}`),
		json.RawMessage(`{"type":"group","userId":"u1","messageId":"3","groupId":"g1"}`),
		json.RawMessage(`{"type":"alias","userId":"u1","previousId":"u2","messageId":"4"}`),
		json.RawMessage(`{"type":"identify","userId":"u2","messageId":"5","traits":{"name":"back again"}}`),
		json.RawMessage(`{"type":"identify","userId":"u3","messageId":"6","traits":{"email":"c@example.com"}}`),
		json.RawMessage(`{"type":"delete","userId":"u3","messageId":"7"}`),
		json.RawMessage(`{"type":"identify","userId":"u3","messageId":"8","traits":{"plan":"pro"}}`),
		json.RawMessage(`{"type":"identify","userId":"u1","messageId":"9","traits":{"email":"a2@example.com","plan":"pro"}}`),
		json.RawMessage(`{"type":"alias","userId":"u4","previousId":"u1","messageId":"10"}`),
		json.RawMessage(`{"type":"identify","userId":"u4","messageId":"11","traits":{"language":"fr"}}`),
	}
	profiles := func(svc *Service) map[string]string {
		rows, err := svc.DB.(*store.DB).Reader().Query(`SELECT distinct_id, body FROM profiles ORDER BY distinct_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var id string
			var body []byte
			if err := rows.Scan(&id, &body); err != nil {
				t.Fatal(err)
			}
			p, err := DecodeProfile(body)
			if err != nil {
				t.Fatal(err)
			}
			p.CreatedAt, p.UpdatedAt = time.Time{}, time.Time{}
			out[id] = string(EncodeProfile(p))
		}
		return out
	}
	one, did := serviceFixture(t, DefaultSettings())
	if _, err := one.Receive(ctx, did, Prepare(msgs)); err != nil {
		t.Fatal(err)
	}
	each, did2 := serviceFixture(t, DefaultSettings())
	for _, m := range msgs {
		if _, err := each.Receive(ctx, did2, Prepare([]json.RawMessage{m})); err != nil {
			t.Fatal(err)
		}
	}
	got, want := profiles(one), profiles(each)
	if len(want) != 3 { // u2 (identified again after the alias), u3 (after its delete), u4
		t.Fatalf("one call per message left %d profiles: %v", len(want), want)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("one body left profiles\n%v\none call per message left\n%v", got, want)
	}
}
