package destination

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

func TestSplitBody(t *testing.T) {
	firstElem := "{\"type\": \"track\",\n   \"event\" : \"Signed Up\", \"userId\": \"u1\"}"
	arrayBody := "[\n  " + firstElem + " ,\n  {\"type\":\"identify\",\"userId\":\"u2\"}\n]\n"
	batchBody := `{"batch":[{"type":"track","event":"A","userId":"u"},{"type":"page","userId":"u"}],"context":{"x":1}}`

	tests := []struct {
		name       string
		body       string
		wantMsgs   []string // exact bytes of each message
		wantSigned string
		wantErr    string // substring of the error; "" means no error
	}{
		{
			name:       "single object: whole body signed, whitespace included",
			body:       "  {\"type\":\"track\",\"event\":\"A\",\"userId\":\"u\"}\n",
			wantMsgs:   []string{`{"type":"track","event":"A","userId":"u"}`},
			wantSigned: "  {\"type\":\"track\",\"event\":\"A\",\"userId\":\"u\"}\n",
		},
		{
			name:       "array: only the first element is signed, byte for byte",
			body:       arrayBody,
			wantMsgs:   []string{firstElem, `{"type":"identify","userId":"u2"}`},
			wantSigned: firstElem,
		},
		{
			name:       "batch object: whole body signed",
			body:       batchBody,
			wantMsgs:   []string{`{"type":"track","event":"A","userId":"u"}`, `{"type":"page","userId":"u"}`},
			wantSigned: batchBody,
		},
		{
			name:       "empty array holds no messages",
			body:       "[]",
			wantMsgs:   []string{},
			wantSigned: "[]",
		},
		{
			name:       "array elements of any type are passed on for ParseMessage to ignore",
			body:       `[1, "x", null]`,
			wantMsgs:   []string{`1`, `"x"`, `null`},
			wantSigned: `1`,
		},
		{
			name:       "a Batch key of another case is an ordinary message field",
			body:       `{"Batch":[1]}`,
			wantMsgs:   []string{`{"Batch":[1]}`},
			wantSigned: `{"Batch":[1]}`,
		},
		{name: "malformed JSON", body: `{"type":"track",`, wantErr: "malformed JSON"},
		{name: "trailing garbage", body: `{"type":"track"} {}`, wantErr: "malformed JSON"},
		{name: "unclosed array", body: `[{"type":"track"}`, wantErr: "malformed JSON"},
		{name: "number", body: `42`, wantErr: "body is a number"},
		{name: "string", body: `"identify"`, wantErr: "body is a string"},
		{name: "null", body: `null`, wantErr: "body is null"},
		{name: "boolean", body: `true`, wantErr: "body is a boolean"},
		{name: "empty", body: ``, wantErr: "empty body"},
		{name: "only whitespace", body: " \n\t", wantErr: "empty body"},
		{name: "batch is an object", body: `{"batch":{"type":"track"}}`, wantErr: `"batch" is an object, want an array`},
		{name: "batch is null", body: `{"batch":null}`, wantErr: `"batch" is null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, signed, err := SplitBody([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("SplitBody(%q) = %d messages, want error containing %q", tt.body, len(msgs), tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
				}
				if code := domain.ErrorCode(err); code != domain.EINVALID {
					t.Errorf("error code = %q, want %q so the handler answers 400", code, domain.EINVALID)
				}
				return
			}
			if err != nil {
				t.Fatalf("SplitBody(%q): %v", tt.body, err)
			}
			if len(msgs) != len(tt.wantMsgs) {
				t.Fatalf("got %d messages, want %d", len(msgs), len(tt.wantMsgs))
			}
			for i := range msgs {
				if string(msgs[i]) != tt.wantMsgs[i] {
					t.Errorf("message %d = %q, want %q", i, msgs[i], tt.wantMsgs[i])
				}
			}
			if string(signed) != tt.wantSigned {
				t.Errorf("signed = %q, want %q", signed, tt.wantSigned)
			}
		})
	}
}

// A signature Segment computed over the first element verifies; one over the whole array
// body (what a naive handler would check) does not.
func TestSplitBodyArraySignatureRoundTrip(t *testing.T) {
	first := "{ \"type\" : \"track\" ,\"event\":\"Order Completed\",\"userId\":\"42\" }"
	body := []byte("[" + first + ",{\"type\":\"track\",\"event\":\"B\",\"userId\":\"42\"}]")
	_, signed, err := SplitBody(body)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifySignature("s3cret", signed, Sign("s3cret", []byte(first))) {
		t.Error("signature over the first element's exact bytes does not verify")
	}
	if VerifySignature("s3cret", signed, Sign("s3cret", body)) {
		t.Error("signature over the whole array body verifies; Segment signs only the first element")
	}
}

func TestSplitBodyTenThousand(t *testing.T) {
	const n = 10000
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `{"type":"track","messageId":"m%d","userId":%d,"event":"E","properties":{"i":%d}}`, i, i, i)
	}
	b.WriteString("]")
	msgs, signed, err := SplitBody([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("got %d messages, want %d", len(msgs), n)
	}
	if want := `{"type":"track","messageId":"m0","userId":0,"event":"E","properties":{"i":0}}`; string(signed) != want {
		t.Errorf("signed = %s, want %s", signed, want)
	}
	for i, raw := range msgs {
		m, ignored := ParseMessage(raw)
		if ignored != "" || m.MessageID != fmt.Sprintf("m%d", i) || m.UserID != fmt.Sprint(i) {
			t.Fatalf("message %d: %+v ignored=%q", i, m, ignored)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	// RFC 2202-style known answer: HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog").
	const fox = "The quick brown fox jumps over the lazy dog"
	const foxMAC = "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
	tests := []struct {
		name   string
		secret string
		signed string
		header string
		want   bool
	}{
		{"known answer", "key", fox, foxMAC, true},
		{"uppercase hex is accepted: same MAC bytes", "key", fox, strings.ToUpper(foxMAC), true},
		{"wrong MAC", "key", fox, "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d8", false},
		{"other body", "key", fox + ".", foxMAC, false},
		{"other secret", "key2", fox, foxMAC, false},
		{"empty header", "key", fox, "", false},
		{"truncated header", "key", fox, foxMAC[:38], false},
		{"header with prefix", "key", fox, "sha1=" + foxMAC, false},
		{"not hex", "key", fox, strings.Repeat("zz", 20), false},
		{"sha256 of the body is not accepted", "key", fox, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8", false},
		{"empty secret never verifies", "", fox, Sign("", []byte(fox)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifySignature(tt.secret, []byte(tt.signed), tt.header); got != tt.want {
				t.Errorf("VerifySignature(%q, %q, %q) = %v, want %v", tt.secret, tt.signed, tt.header, got, tt.want)
			}
		})
	}
	if got := Sign("key", []byte(fox)); got != foxMAC {
		t.Errorf("Sign = %s, want %s", got, foxMAC)
	}
}

func TestParseMessage(t *testing.T) {
	ts := time.Date(2024, 3, 20, 15, 30, 0, 0, time.UTC)
	tests := []struct {
		name        string
		raw         string
		want        Message // compared field by field; Traits/Properties as JSON
		wantIgnored string  // substring; "" means applied
	}{
		{
			name: "identify",
			raw:  `{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1","timestamp":"2024-03-20T15:30:00Z","traits":{"email":"p@example.com","logins":5}}`,
			want: Message{Type: TypeIdentify, MessageID: "m1", UserID: "u1", AnonymousID: "a1", Timestamp: ts,
				Traits: map[string]any{"email": "p@example.com", "logins": json.Number("5")}},
		},
		{
			name: "identify falls back to context.traits",
			raw:  `{"type":"identify","userId":"u1","context":{"traits":{"email":"p@example.com"}}}`,
			want: Message{Type: TypeIdentify, UserID: "u1", Traits: map[string]any{"email": "p@example.com"}},
		},
		{
			name: "identify traits win over context.traits",
			raw:  `{"type":"identify","userId":"u1","traits":{"plan":"pro"},"context":{"traits":{"email":"p@example.com"}}}`,
			want: Message{Type: TypeIdentify, UserID: "u1", Traits: map[string]any{"plan": "pro"}},
		},
		{
			name: "identify with no traits is an empty update",
			raw:  `{"type":"identify","userId":"u1"}`,
			want: Message{Type: TypeIdentify, UserID: "u1", Traits: map[string]any{}},
		},
		{
			name: "numeric userId keeps its digits",
			raw:  `{"type":"identify","userId":12345678901234567890,"traits":{}}`,
			want: Message{Type: TypeIdentify, UserID: "12345678901234567890", Traits: map[string]any{}},
		},
		{
			name: "track, type case-insensitive, large numbers kept exact",
			raw:  `{"type":"Track","userId":"u1","event":"Order Completed","properties":{"order_id":9007199254740993},"sentAt":"2024-03-20T17:30:00+02:00"}`,
			want: Message{Type: TypeTrack, UserID: "u1", Event: "Order Completed", Timestamp: ts,
				Properties: map[string]any{"order_id": json.Number("9007199254740993")}},
		},
		{
			name: "track by an anonymous visitor",
			raw:  `{"type":"track","anonymousId":"a1","event":"Viewed Pricing"}`,
			want: Message{Type: TypeTrack, AnonymousID: "a1", Event: "Viewed Pricing", Properties: map[string]any{}},
		},
		{
			name: "timestamp falls back to receivedAt, then originalTimestamp",
			raw:  `{"type":"track","userId":"u","event":"E","timestamp":"yesterday","originalTimestamp":"2024-03-20T15:30:00.000Z"}`,
			want: Message{Type: TypeTrack, UserID: "u", Event: "E", Timestamp: ts, Properties: map[string]any{}},
		},
		{
			name: "page with name",
			raw:  `{"type":"page","userId":"u","name":"Pricing","properties":{"url":"https://x"}}`,
			want: Message{Type: TypePage, UserID: "u", Name: "Pricing", Properties: map[string]any{"url": "https://x"}},
		},
		{
			name: "page name from properties.name",
			raw:  `{"type":"page","userId":"u","properties":{"name":"Home"}}`,
			want: Message{Type: TypePage, UserID: "u", Name: "Home", Properties: map[string]any{"name": "Home"}},
		},
		{
			name: "screen",
			raw:  `{"type":"screen","userId":"u","name":"Settings"}`,
			want: Message{Type: TypeScreen, UserID: "u", Name: "Settings", Properties: map[string]any{}},
		},
		{
			name: "group with numeric groupId",
			raw:  `{"type":"group","userId":"u","groupId":42,"traits":{"name":"Initech"}}`,
			want: Message{Type: TypeGroup, UserID: "u", GroupID: "42", Traits: map[string]any{"name": "Initech"}},
		},
		{
			name: "alias",
			raw:  `{"type":"alias","userId":"u","previousId":"anon-1"}`,
			want: Message{Type: TypeAlias, UserID: "u", PreviousID: "anon-1"},
		},
		{
			name: "delete",
			raw:  `{"type":"delete","userId":"u","messageId":"d1"}`,
			want: Message{Type: TypeDelete, UserID: "u", MessageID: "d1"},
		},
		{
			name: "context of the wrong type does not sink the message",
			raw:  `{"type":"track","userId":"u","event":"E","context":"web"}`,
			want: Message{Type: TypeTrack, UserID: "u", Event: "E", Properties: map[string]any{}},
		},

		{name: "identify without userId", raw: `{"type":"identify","anonymousId":"a","traits":{}}`, wantIgnored: "identify without userId"},
		{name: "blank userId counts as missing", raw: `{"type":"identify","userId":"  ","traits":{}}`, wantIgnored: "without userId"},
		{name: "no ids at all", raw: `{"type":"track","event":"E"}`, wantIgnored: "track without userId or anonymousId"},
		{name: "track without event", raw: `{"type":"track","userId":"u"}`, wantIgnored: "track without event"},
		{name: "track with blank event", raw: `{"type":"track","userId":"u","event":" "}`, wantIgnored: "track without event"},
		{name: "event not a string", raw: `{"type":"track","userId":"u","event":7}`, wantIgnored: "event is a number, want a string"},
		{name: "traits not an object", raw: `{"type":"identify","userId":"u","traits":["a"]}`, wantIgnored: "traits is an array, want an object"},
		{name: "context.traits not an object", raw: `{"type":"identify","userId":"u","context":{"traits":"x"}}`, wantIgnored: "context.traits is a string"},
		{name: "properties not an object", raw: `{"type":"track","userId":"u","event":"E","properties":"x"}`, wantIgnored: "properties is a string, want an object"},
		{name: "group without groupId", raw: `{"type":"group","userId":"u"}`, wantIgnored: "group without groupId"},
		{name: "group without userId", raw: `{"type":"group","anonymousId":"a","groupId":"g"}`, wantIgnored: "group without userId"},
		{name: "alias without previousId", raw: `{"type":"alias","userId":"u"}`, wantIgnored: "alias without previousId"},
		{name: "alias onto itself", raw: `{"type":"alias","userId":"u","previousId":"u"}`, wantIgnored: "previousId equal to userId"},
		{name: "delete without userId", raw: `{"type":"delete","anonymousId":"a"}`, wantIgnored: "delete without userId"},
		{name: "unknown type", raw: `{"type":"purchase","userId":"u"}`, wantIgnored: `unknown type "purchase"`},
		{name: "no type", raw: `{"userId":"u"}`, wantIgnored: "no type"},
		{name: "type not a string", raw: `{"type":1,"userId":"u"}`, wantIgnored: "type is a number"},
		{name: "userId a boolean", raw: `{"type":"identify","userId":true}`, wantIgnored: "userId is a boolean, want a string or number"},
		{name: "userId an object", raw: `{"type":"identify","userId":{"id":1}}`, wantIgnored: "userId is an object"},
		{name: "message is an array", raw: `[{"type":"identify"}]`, wantIgnored: "message is an array, want an object"},
		{name: "message is a number", raw: `1`, wantIgnored: "message is a number"},
		{name: "message is not JSON", raw: `{"type":`, wantIgnored: "not valid JSON"},
		{name: "message is empty", raw: ``, wantIgnored: "message is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ignored := ParseMessage(json.RawMessage(tt.raw))
			if tt.wantIgnored != "" {
				if !strings.Contains(ignored, tt.wantIgnored) {
					t.Errorf("ignored = %q, want it to contain %q", ignored, tt.wantIgnored)
				}
				return
			}
			if ignored != "" {
				t.Fatalf("ignored = %q, want applied", ignored)
			}
			if got, want := scalarFields(m), scalarFields(tt.want); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if !m.Timestamp.Equal(tt.want.Timestamp) {
				t.Errorf("Timestamp = %v, want %v", m.Timestamp, tt.want.Timestamp)
			}
			if got, want := mustJSON(t, m.Traits), mustJSON(t, tt.want.Traits); got != want {
				t.Errorf("Traits = %s, want %s", got, want)
			}
			if got, want := mustJSON(t, m.Properties), mustJSON(t, tt.want.Properties); got != want {
				t.Errorf("Properties = %s, want %s", got, want)
			}
		})
	}
}

// scalarFields renders the string fields of m for comparison.
func scalarFields(m Message) string {
	return fmt.Sprintf("type=%q messageId=%q userId=%q anonymousId=%q previousId=%q groupId=%q event=%q name=%q",
		m.Type, m.MessageID, m.UserID, m.AnonymousID, m.PreviousID, m.GroupID, m.Event, m.Name)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEventName(t *testing.T) {
	tests := []struct {
		name   string
		m      Message
		prefix bool
		want   string
		wantOK bool
	}{
		{"track", Message{Type: TypeTrack, Event: "User Registered"}, false, "User Registered", true},
		{"track prefixed as SuprSend documents", Message{Type: TypeTrack, Event: "User Registered"}, true, "segment : User Registered", true},
		{"page", Message{Type: TypePage, Name: "Pricing"}, false, "Viewed Pricing Page", true},
		{"page prefixed", Message{Type: TypePage, Name: "Pricing"}, true, "segment : Viewed Pricing Page", true},
		{"page without name", Message{Type: TypePage}, false, "Viewed Page", true},
		{"screen", Message{Type: TypeScreen, Name: "Settings"}, false, "Viewed Settings Screen", true},
		{"screen without name, prefixed", Message{Type: TypeScreen, Name: " "}, true, "segment : Viewed Screen", true},
		{"identify makes no event", Message{Type: TypeIdentify}, true, "", false},
		{"group makes no event", Message{Type: TypeGroup}, false, "", false},
		{"alias makes no event", Message{Type: TypeAlias}, false, "", false},
		{"delete makes no event", Message{Type: TypeDelete}, false, "", false},
		{"track without event", Message{Type: TypeTrack}, true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := EventName(tt.m, tt.prefix)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("EventName = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// The parsed page message and EventName together give the documented name.
func TestEventNameFromParsedPage(t *testing.T) {
	m, ignored := ParseMessage(json.RawMessage(`{"type":"page","userId":"u","properties":{"name":"Home"}}`))
	if ignored != "" {
		t.Fatal(ignored)
	}
	if got, _ := EventName(m, true); got != "segment : Viewed Home Page" {
		t.Errorf("EventName = %q", got)
	}
}
