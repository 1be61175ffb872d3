package source

import (
	"bytes"
	"encoding/json"
	"testing"
)

// checkWalkMatchesEncodingJSON compares eachMember with encoding/json on a valid object or
// array: the same members, the same raw values.
func checkWalkMatchesEncodingJSON(tb testing.TB, b []byte) {
	tb.Helper()
	b = trimSpace(b)
	switch kindOf(b) {
	case '{':
		var want map[string]json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			tb.Fatalf("test input %q: %v", b, err)
		}
		got := map[string]json.RawMessage{}
		eachMember(b, func(k, v []byte) bool {
			got[keyText(k)] = v
			return true
		})
		if len(got) != len(want) {
			tb.Fatalf("%s: walk found %d distinct keys, encoding/json %d", b, len(got), len(want))
		}
		for k, w := range want {
			if g, ok := got[k]; !ok || !bytes.Equal(g, w) {
				tb.Fatalf("%s: member %q = %q, encoding/json says %q", b, k, g, w)
			}
		}
	case '[':
		var want []json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			tb.Fatalf("test input %q: %v", b, err)
		}
		var got []json.RawMessage
		eachMember(b, func(_, v []byte) bool {
			got = append(got, v)
			return true
		})
		if len(got) != len(want) {
			tb.Fatalf("%s: walk found %d elements, encoding/json %d", b, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				tb.Fatalf("%s: element %d = %q, encoding/json says %q", b, i, got[i], want[i])
			}
		}
	}
}

func TestEachMember(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `{ }`, "[ \n ]",
		`{"a":1,"b":"x","c":null,"d":true,"e":false,"f":-1.5e+3}`,
		`{"a" : { "b" : [1, {"c":"]}"}] } , "d":"\"}"}`,
		`{"q\"uote":"v\\","sl\\":"\\\"","u":"\u0041\ud83d\ude00"}`,
		`{"\u0074ype":"delivery"}`,
		`{"dup":1,"dup":2}`,
		`[1, "a,b", [2, [3]], {"x": "]"}, null]`,
		"{\n\t\"a\"\t:\r\n1 ,\"b\":[ ]\n}",
	} {
		checkWalkMatchesEncodingJSON(t, []byte(in))
	}
	// Stopping early is honoured, which unwrap relies on to stay cheap on odd input.
	n := 0
	eachMember([]byte(`[1,2,3]`), func(_, _ []byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("walk went on after fn returned false: %d calls", n)
	}
}

func TestKeyTextDecodesEscapes(t *testing.T) {
	ev := ParseEvent(json.RawMessage(`{"\u006dsys":{"message_event":{"\u0074ype":"delivery","Type":"open","event_id":"1"}}}`))
	if ev.ParseError != "" || ev.Type != "delivery" {
		t.Errorf("type %q, ParseError %q: escaped keys must match, other cases must not", ev.Type, ev.ParseError)
	}
}
