package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/server"
)

// SuprSend's Segment guide shows two identify calls for Peter Gibbons and the profile they make:
// every trait a property, email → $email, phone → $sms, slack_email (mapped, as the guide maps
// it) → $slack, language "hi" → $preferred_language. Through the real hook, the same.
func TestSegmentHookSuprSendDocumentedExample(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment", "channel_map": {"$slack.email": "slack_email"}}`)
	for _, f := range []string{"suprsend_identify_language.json", "suprsend_identify_channels.json"} {
		body, err := os.ReadFile("../destination/testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if r := app.mustHook(d, body); r.Accepted != 1 || r.Ignored != 0 || len(r.Warnings) != 0 {
			t.Fatalf("%s: %+v", f, r)
		}
	}
	jsonEqual(t, app.profile("97980cfea0067"), `{
		"distinct_id": "97980cfea0067",
		"properties": {"name": "Peter Gibbons", "email": "peter@example.com", "phone": "+15555555555",
			"slack_email": "peter@abccompany.com", "language": "hi", "plan": "premium", "logins": 5},
		"$email": ["peter@example.com"], "$sms": ["+15555555555"], "$whatsapp": [],
		"$slack": [{"email": "peter@abccompany.com"}], "$androidpush": [], "$iospush": [],
		"$preferred_language": "hi"
	}`)
}

func TestSegmentHookPrefixEvents(t *testing.T) {
	app := newDestApp(t)
	plain := app.destination(`{"name": "plain"}`)
	prefixed := app.destination(`{"name": "prefixed", "prefix_events": true}`)
	app.mustHook(plain, `[{"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "a1"},
		{"type": "page", "userId": "u1", "name": "Home", "messageId": "a2"}]`)
	app.mustHook(prefixed, `{"batch": [{"type": "track", "userId": "u2", "event": "Order Completed", "messageId": "b1"},
		{"type": "screen", "userId": "u2", "name": "Cart", "messageId": "b2"}]}`)
	if got := app.events("u1"); strings.Join(got, "|") != "Viewed Home Page|Order Completed" {
		t.Errorf("prefix off: %q", got)
	}
	if got := app.events("u2"); strings.Join(got, "|") != "segment : Viewed Cart Screen|segment : Order Completed" {
		t.Errorf("prefix on: %q", got)
	}
	// Switching the prefix on applies to the messages that come next.
	if s, body, _ := app.Do("PATCH", app.path("/destinations/"+plain.ID), app.Token, `{"prefix_events": true}`); s != 200 || !strings.Contains(string(body), `"prefix_events":true`) {
		t.Fatalf("PATCH: %d %s", s, body)
	}
	app.mustHook(plain, `{"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "a3"}`)
	if got := app.events("u1"); got[0] != "segment : Order Completed" || got[2] != "Order Completed" {
		t.Errorf("after PATCH: %q", got)
	}
}

func TestSegmentHookEmailAppendsUnlessReplace(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment"}`)
	identify := func(id, email string) {
		app.mustHook(d, fmt.Sprintf(`{"type": "identify", "userId": "u", "messageId": %q, "traits": {"email": %q}}`, id, email))
	}
	identify("1", "old@example.com")
	identify("2", "new@example.com")
	identify("3", "OLD@example.com") // the same mailbox: not added twice
	if got := app.profile("u")["$email"]; fmt.Sprint(got) != "[old@example.com new@example.com]" {
		t.Fatalf("append: $email = %v", got)
	}
	if s, body, _ := app.Do("PATCH", app.path("/destinations/"+d.ID), app.Token, `{"channel_policy": "replace"}`); s != 200 {
		t.Fatalf("PATCH: %d %s", s, body)
	}
	identify("4", "only@example.com")
	if got := app.profile("u")["$email"]; fmt.Sprint(got) != "[only@example.com]" {
		t.Fatalf("replace: $email = %v", got)
	}
	identify("5", "not an email") // an invalid value never erases a working address
	if got := app.profile("u")["$email"]; fmt.Sprint(got) != "[only@example.com]" {
		t.Fatalf("replace with an invalid value: $email = %v", got)
	}
}

func TestSegmentHookRejectedValuesAreVisible(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment"}`)
	r := app.mustHook(d, `{"type": "identify", "userId": "u", "messageId": "m1",
		"traits": {"language": "hindi", "timezone": "Mars/Olympus", "phone": "5550100", "email": "u@example.com"}}`)
	if r.Accepted != 1 || len(r.Warnings) != 1 || len(r.Warnings[0].Warnings) != 3 {
		t.Fatalf("receipt: %+v", r)
	}
	fields := map[string]string{}
	for _, w := range r.Warnings[0].Warnings {
		fields[w.Field] = w.Reason
	}
	if !strings.Contains(fields["language"], "ISO 639-1") || !strings.Contains(fields["timezone"], "IANA") || !strings.Contains(fields["phone"], "E.164") {
		t.Fatalf("reasons: %v", fields)
	}
	p := app.profile("u")
	if _, ok := p["$preferred_language"]; ok {
		t.Errorf("an invalid language was stored: %v", p)
	}
	if _, ok := p["$timezone"]; ok {
		t.Errorf("an invalid timezone was stored: %v", p)
	}
	if fmt.Sprint(p["$sms"]) != "[]" || fmt.Sprint(p["$email"]) != "[u@example.com]" || p["properties"].(map[string]any)["language"] != "hindi" {
		t.Errorf("profile: %v", p)
	}
	// The message status keeps the reasons for later.
	status, body, _ := app.Do("GET", app.path("/destinations/"+d.ID+"/messages"), app.Token, nil)
	if status != 200 || !strings.Contains(string(body), `"status":"applied"`) || !strings.Contains(string(body), `"field":"language","value":"hindi","reason":"not an ISO 639-1`) {
		t.Fatalf("messages: %d %s", status, body)
	}
	// A valid language after it is stored lower-case.
	app.mustHook(d, `{"type": "identify", "userId": "u", "messageId": "m2", "traits": {"language": "HI", "timezone": "Asia/Kolkata"}}`)
	if p := app.profile("u"); p["$preferred_language"] != "hi" || p["$timezone"] != "Asia/Kolkata" {
		t.Fatalf("valid preferences: %v", p)
	}
}

func TestSegmentHookEveryDefaultChannelKey(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment"}`)
	app.mustHook(d, `{"type": "identify", "userId": "u", "traits": {
		"email": "a@example.com", "phone": "+1 (555) 010-0000", "whatsapp": "+91 98765 43210",
		"slackEmail": "a@corp.example.com", "slackUserID": "U024BE7LH",
		"fcmAndroidpush": "fcm-1", "xiaomiAndroidpush": "mi-1", "apnsIospush": "apns-1"}}`)
	p := app.profile("u")
	delete(p, "properties")
	jsonEqual(t, p, `{
		"distinct_id": "u",
		"$email": ["a@example.com"], "$sms": ["+15550100000"], "$whatsapp": ["+919876543210"],
		"$slack": [{"email": "a@corp.example.com"}, {"user_id": "U024BE7LH"}],
		"$androidpush": [{"token": "fcm-1", "provider": "fcm"}, {"token": "mi-1", "provider": "xiaomi"}],
		"$iospush": [{"token": "apns-1", "provider": "apns"}]
	}`)
	for q, want := range map[string]int{
		"?email=A@EXAMPLE.com": 1, "?phone=%2B1%20555%20010%200000": 1, "?phone=%2B919876543210": 1,
		"?channel_value=mi-1": 1, "?channel_value=a@corp.example.com": 1, "?email=nobody@example.com": 0,
	} {
		status, body, _ := app.Do("GET", app.path("/users"+q), app.Token, nil)
		if status != 200 || !strings.Contains(string(body), fmt.Sprintf(`"total_count":%d`, want)) {
			t.Errorf("GET users%s: %d %s", q, status, body)
		}
	}
}

func TestSegmentHookSignature(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment", "require_signature": true}`)
	one := `{"type": "identify", "userId": "u1", "messageId": "s1"}`
	first := `{"type":"identify","userId":"u2","messageId":"s2"}`
	array := "[" + first + ` , {"type": "identify", "userId": "u3", "messageId": "s3"}]`
	for _, tc := range []struct {
		name   string
		body   string
		sig    string
		status int
	}{
		{"valid", one, destination.Sign(d.SharedSecret, []byte(one)), 200},
		{"uppercase hex", one, strings.ToUpper(destination.Sign(d.SharedSecret, []byte(one))), 200},
		{"wrong", one, destination.Sign("another secret", []byte(one)), 401},
		{"missing", one, "", 401},
		{"garbage", one, "zz", 401},
		{"array signed on its first element", array, destination.Sign(d.SharedSecret, []byte(first)), 200},
		{"array signed as a whole", array, destination.Sign(d.SharedSecret, []byte(array)), 401},
		{"malformed body, no signature: 401, not 400", `{"type":`, "", 401},
		{"malformed body, signed: 400", `{"type":`, destination.Sign(d.SharedSecret, []byte(`{"type":`)), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.sig != "" {
				headers = []string{"X-Signature", tc.sig}
			}
			status, body := app.hook(d, tc.body, headers...)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
		})
	}
	if app.profile("u2") == nil || app.profile("u3") == nil {
		t.Error("the signed array was not applied")
	}
	// Without require_signature, an unsigned request with the API key is enough.
	open := app.destination(`{"name": "open"}`)
	if r := app.mustHook(open, one); r.Accepted != 1 {
		t.Fatalf("%+v", r)
	}
}

func TestSegmentHookSameMessageIDAppliedOnce(t *testing.T) {
	app := newDestApp(t)
	rcv := newWorkflowReceiver(t)
	app.workflow(rcv, "Order Completed")
	d := app.destination(`{"name": "Segment"}`)
	identify := `{"type": "identify", "userId": "u", "messageId": "id-1", "traits": {"email": "u@example.com"}}`
	track := `{"type": "track", "userId": "u", "messageId": "tr-1", "event": "Order Completed"}`
	if r := app.mustHook(d, "["+identify+","+track+","+track+"]"); r.Accepted != 2 || r.Duplicates != 1 {
		t.Fatalf("first: %+v", r)
	}
	if r := app.mustHook(d, "["+identify+","+track+"]"); r.Accepted != 0 || r.Duplicates != 2 {
		t.Fatalf("re-sent: %+v", r)
	}
	if got := app.events("u"); len(got) != 1 {
		t.Fatalf("events: %v", got)
	}
	waitFor(t, "the workflow delivery", func() bool { return len(rcv.accepted()) >= 1 })
	if ds := app.workflowDeliveries(); len(ds) != 1 {
		t.Fatalf("%d workflow deliveries, want 1", len(ds))
	}
	status, body, _ := app.Do("GET", app.path("/destinations/"+d.ID+"/messages?status=duplicate"), app.Token, nil)
	if status != 200 || !strings.Contains(string(body), `"total_count":3`) || strings.Contains(string(body), `"message":`) {
		t.Fatalf("duplicates listed without a second copy of the body: %d %s", status, body)
	}
	// Messages without a messageId are told apart by their bytes.
	noID := `{"type": "track", "userId": "u", "event": "Viewed"}`
	if r := app.mustHook(d, "["+noID+","+noID+"]"); r.Accepted != 1 || r.Duplicates != 1 {
		t.Fatalf("without messageId: %+v", r)
	}
}

func TestSegmentHookAliasMerges(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment"}`)
	app.mustHook(d, `[
		{"type": "identify", "userId": "anon-7", "traits": {"email": "first@example.com", "plan": "free", "source": "ad"}},
		{"type": "track", "userId": "anon-7", "event": "Browsed", "messageId": "t1"},
		{"type": "identify", "userId": "user-7", "traits": {"email": "second@example.com", "plan": "pro", "language": "de"}},
		{"type": "alias", "userId": "user-7", "previousId": "anon-7", "messageId": "al1"}]`)
	p := app.profile("user-7")
	if fmt.Sprint(p["$email"]) != "[second@example.com first@example.com]" || p["$preferred_language"] != "de" {
		t.Fatalf("merged channels: %v", p)
	}
	props := p["properties"].(map[string]any)
	if props["plan"] != "pro" || props["source"] != "ad" {
		t.Fatalf("userId's properties win, the others are kept: %v", props)
	}
	if app.profile("anon-7") != nil {
		t.Fatal("the previous profile still exists")
	}
	if got := app.events("user-7"); len(got) != 1 || got[0] != "Browsed" {
		t.Fatalf("events moved to the user: %v", got)
	}
	status, body, _ := app.Do("GET", app.path("/users?email=first@example.com"), app.Token, nil)
	if status != 200 || !strings.Contains(string(body), `"total_count":1`) || !strings.Contains(string(body), `"distinct_id":"user-7"`) {
		t.Fatalf("lookup by the merged email: %s", body)
	}
}

func TestSegmentHookDeleteErases(t *testing.T) {
	app := newDestApp(t)
	rcv := newWorkflowReceiver(t)
	app.workflow(rcv, "Order Completed")
	d := app.destination(`{"name": "Segment", "hold_for": "1h"}`)
	identify := `{"type": "identify", "userId": "gone", "messageId": "i1", "traits": {"email": "gone@example.com"}}`
	app.mustHook(d, `[{"type": "track", "userId": "gone", "messageId": "t0", "event": "Order Completed"}]`)
	if ds := app.workflowDeliveries(); len(ds) != 1 || ds[0].Reason != "waiting_for_user" {
		t.Fatalf("deliveries before: %+v", ds)
	}
	app.mustHook(d, `[`+identify+`, {"type": "identify", "userId": "stays", "traits": {"email": "stays@example.com"}}]`)
	waitFor(t, "the released delivery", func() bool { return len(rcv.accepted()) == 1 })
	app.mustHook(d, `{"type": "track", "userId": "gone", "messageId": "t1", "event": "Clicked", "properties": {"secret": "x"}}`)
	app.mustHook(d, `{"type": "delete", "userId": "gone", "messageId": "del1"}`)

	if app.profile("gone") != nil || app.events("gone") != nil {
		t.Fatal("profile or events survived the delete")
	}
	if app.profile("stays") == nil {
		t.Fatal("another user was erased")
	}
	if ds := app.workflowDeliveries(); len(ds) != 0 {
		t.Fatalf("the erased user's workflow deliveries remain: %d", len(ds))
	}
	status, body, _ := app.Do("GET", app.path("/destinations/"+d.ID+"/messages?distinct_id=gone"), app.Token, nil)
	if status != 200 || strings.Contains(string(body), "gone@example.com") || strings.Contains(string(body), `"secret"`) ||
		!strings.Contains(string(body), `"erased":true`) || !strings.Contains(string(body), `"message_id":"del1"`) {
		t.Fatalf("raw copies of the erased user's messages: %s", body)
	}
	status, body, _ = app.Do("GET", app.path("/users?email=gone@example.com"), app.Token, nil)
	if status != 200 || !strings.Contains(string(body), `"total_count":0`) {
		t.Fatalf("channel index: %s", body)
	}
	// Segment re-sending an old message does not bring the user back.
	if r := app.mustHook(d, identify); r.Duplicates != 1 || app.profile("gone") != nil {
		t.Fatalf("re-sent identify after delete: %+v", r)
	}
}

func TestSegmentHookTenantDeletionRemovesEverything(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment"}`)
	app.mustHook(d, `{"type": "identify", "userId": "u", "traits": {"email": "u@example.com"}}`)
	if s, _, _ := app.Do("DELETE", "/api/v1/tenants/"+app.T.ID, app.OperatorToken(), nil); s != 204 {
		t.Fatalf("delete tenant: %d", s)
	}
	if s, body := app.hook(d, `{"type": "identify", "userId": "u"}`); s != 404 {
		t.Fatalf("hook of a deleted tenant's destination: %d %s", s, body)
	}
	for _, table := range []string{"destinations", "destination_keys", "dest_messages", "profiles", "profile_channels", "user_events"} {
		var n int
		if err := app.DB.Reader().QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left (%v)", table, n, err)
		}
	}
}

func TestSegmentHookRotationKeepsOldKeyWorking(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment", "require_signature": true}`)
	status, body, _ := app.Do("POST", app.path("/destinations/"+d.ID+"/rotate"), app.Token, nil)
	var rotated createdDestination
	if status != 200 || json.Unmarshal(body, &rotated) != nil || rotated.APIKey == "" || rotated.APIKey == d.APIKey ||
		!strings.Contains(string(body), `"previous_key_expires_at"`) {
		t.Fatalf("rotate: %d %s", status, body)
	}
	rotated.ID = d.ID
	app.Secret(rotated.APIKey)
	app.Secret(rotated.SharedSecret)
	msg := `{"type": "identify", "userId": "u"}`
	for name, dd := range map[string]createdDestination{"old": d, "new": rotated} {
		if s, b := app.hook(dd, msg, "X-Signature", destination.Sign(dd.SharedSecret, []byte(msg))); s != 200 {
			t.Errorf("%s key and secret: %d %s", name, s, b)
		}
	}
	status, body, _ = app.Do("GET", app.path("/destinations/"+d.ID), app.Token, nil)
	if status != 200 || strings.Contains(string(body), rotated.APIKey) || strings.Contains(string(body), rotated.SharedSecret) ||
		!strings.Contains(string(body), `"api_key_hint":"`+"…"+rotated.APIKey[len(rotated.APIKey)-4:]) {
		t.Fatalf("GET shows hints of the new key only: %s", body)
	}
}

// Bad input is a 4xx or a message ignored with its reason, never a 5xx.
func TestSegmentHookBadInput(t *testing.T) {
	app := newDestApp(t)
	d := app.destination(`{"name": "Segment"}`)
	// A destination of another tenant on the same server.
	b := app.Tenant("Other")
	tb := app.TenantToken(b)
	_, body, _ := app.Do("POST", "/api/v1/tenants/"+b.ID+"/destinations", tb, `{"name": "B"}`)
	var bd createdDestination
	json.Unmarshal(body, &bd)
	app.Secret(bd.APIKey)
	app.Secret(bd.SharedSecret)

	var tenK strings.Builder
	tenK.WriteString("[")
	for i := range server.MaxHookMessages {
		if i > 0 {
			tenK.WriteString(",")
		}
		fmt.Fprintf(&tenK, `{"n":%d}`, i)
	}
	tenK.WriteString("]")
	tooMany := strings.TrimSuffix(tenK.String(), "]") + `,{"n":-1}]`
	huge := `{"type": "track", "userId": "u", "event": "E", "properties": {"x": "` + strings.Repeat("a", 17<<20) + `"}}`
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)

	for _, tc := range []struct {
		name    string
		did     string
		key     string
		body    any
		status  int
		content []string
	}{
		{"unknown type", d.ID, d.APIKey, `{"type": "launch", "userId": "u"}`, 200, []string{`"ignored":1`, `unknown type \"launch\"`}},
		{"no type", d.ID, d.APIKey, `{"userId": "u"}`, 200, []string{`"ignored":1`, "no type"}},
		{"traits not an object", d.ID, d.APIKey, `{"type": "identify", "userId": "u", "traits": "x"}`, 200, []string{`"ignored":1`, "traits is a string, want an object"}},
		{"identify without userId", d.ID, d.APIKey, `{"type": "identify", "anonymousId": "a"}`, 200, []string{`"ignored":1`, "identify without userId"}},
		{"track without event", d.ID, d.APIKey, `{"type": "track", "userId": "u"}`, 200, []string{`"ignored":1`, "track without event"}},
		{"userId an object", d.ID, d.APIKey, `{"type": "track", "userId": {}, "event": "E"}`, 200, []string{`"ignored":1`, "userId is an object"}},
		{"huge userId", d.ID, d.APIKey, `{"type": "identify", "userId": "` + strings.Repeat("u", 2000) + `"}`, 200, []string{`"ignored":1`, "longer than"}},
		{"array of junk", d.ID, d.APIKey, `[1, "x", null, [], {"type": "delete", "userId": "nobody"}]`, 200, []string{`"accepted":1`, `"ignored":4`, `"index":3`}},
		{"10,000 elements", d.ID, d.APIKey, tenK.String(), 200, []string{`"ignored":10000`}},
		{"10,001 elements", d.ID, d.APIKey, tooMany, 413, []string{"at most 10000"}},
		{"deep nesting", d.ID, d.APIKey, deep, 200, []string{`"ignored":1`}},
		{"malformed JSON", d.ID, d.APIKey, `{"type": "identify",`, 400, []string{"malformed JSON"}},
		{"trailing garbage", d.ID, d.APIKey, `{"type": "identify"} x`, 400, []string{"malformed JSON"}},
		{"empty body", d.ID, d.APIKey, ``, 400, []string{"empty body"}},
		{"null", d.ID, d.APIKey, `null`, 400, []string{"null"}},
		{"batch not an array", d.ID, d.APIKey, `{"batch": {}}`, 400, []string{"batch"}},
		{"invalid UTF-8", d.ID, d.APIKey, []byte("{\"type\": \"identify\", \"userId\": \"\xff\xfe\"}"), 400, []string{"UTF-8"}},
		{"huge body", d.ID, d.APIKey, huge, 413, []string{"body_too_large"}},
		{"no API key", d.ID, "", `{"type": "identify", "userId": "u"}`, 401, []string{"Authorization"}},
		{"wrong API key", d.ID, "sbk_wrong", `{"type": "identify", "userId": "u"}`, 401, []string{"unauthorized"}},
		{"other tenant's key", d.ID, bd.APIKey, `{"type": "identify", "userId": "u"}`, 401, []string{"unauthorized"}},
		{"other tenant's destination with my key", bd.ID, d.APIKey, `{"type": "identify", "userId": "u"}`, 401, []string{"unauthorized"}},
		{"unknown destination", "dst_aaaaaaaaaaaaaaaa", d.APIKey, `{}`, 404, []string{"not_found"}},
		{"garbage destination id", "..%2F..%2Fetc", d.APIKey, `{}`, 404, []string{"not_found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, resp, _ := app.Do("POST", "/hooks/segment/"+tc.did, tc.key, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", status, tc.status, resp)
			}
			for _, want := range tc.content {
				if !strings.Contains(string(resp), want) {
					t.Errorf("body lacks %q: %.300s", want, resp)
				}
			}
			if status >= 400 {
				var e struct {
					Error struct{ Code, Message string }
				}
				if json.Unmarshal(resp, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
					t.Errorf("error body shape: %.300s", resp)
				}
			}
		})
	}
	// Ignored messages are listed with their reasons.
	status, resp, _ := app.Do("GET", app.path("/destinations/"+d.ID+"/messages?status=ignored&limit=1"), app.Token, nil)
	if status != 200 || !strings.Contains(string(resp), `"reason":"`) || !strings.Contains(string(resp), `"next":"`) {
		t.Fatalf("ignored messages: %d %.500s", status, resp)
	}
	// A deleted destination's hook is 404.
	if s, _, _ := app.Do("DELETE", app.path("/destinations/"+d.ID), app.Token, nil); s != 204 {
		t.Fatalf("delete: %d", s)
	}
	if s, resp := app.hook(d, `{"type": "identify", "userId": "u"}`); s != 404 {
		t.Fatalf("deleted destination: %d %s", s, resp)
	}
}
