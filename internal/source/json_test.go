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
	b = TrimSpace(b)
	switch Kind(b) {
	case '{':
		var want map[string]json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			tb.Fatalf("test input %q: %v", b, err)
		}
		got := map[string]json.RawMessage{}
		EachMember(b, func(k, v []byte) bool {
			got[KeyText(k)] = v
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
		EachMember(b, func(_, v []byte) bool {
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
	EachMember([]byte(`[1,2,3]`), func(_, _ []byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("walk went on after fn returned false: %d calls", n)
	}
}

func TestEachMemberRefusesWhatItCannotReadToTheEnd(t *testing.T) {
	for _, in := range []string{``, `"s"`, `1`, `{`, `{"a"`, `{"a":}`, `{"a":1,}`, `{"a":1}x`, `[1,2`, `{"a":"unterminated}`, `{1:2}`} {
		if EachMember([]byte(in), func(_, _ []byte) bool { return true }) {
			t.Errorf("EachMember(%q) = true, want false", in)
		}
	}
	for _, in := range []string{`{}`, ` { "a" : 1 } `, `[]`, `[1]`} {
		if !EachMember([]byte(in), func(_, _ []byte) bool { return true }) {
			t.Errorf("EachMember(%q) = false, want true", in)
		}
	}
}

func TestMember(t *testing.T) {
	obj := []byte(`{"a":1,"b":{"c":"d"},"e":"x\"y"}`)
	for k, want := range map[string]string{"a": "1", "b": `{"c":"d"}`, "e": `"x\"y"`, "c": ""} {
		if got := string(Member(obj, k)); got != want {
			t.Errorf("Member(%q) = %q, want %q", k, got, want)
		}
	}
	if Member([]byte(`"not an object"`), "x") != nil {
		t.Error("Member of a string is not nil")
	}
}

func TestScalarText(t *testing.T) {
	for raw, want := range map[string]string{
		`"101"`: "101", `101`: "101", `1.50`: "1.50", `-3`: "-3", `"a\"b"`: `a"b`,
		`null`: "", `true`: "", `{}`: "", `[]`: "", ``: "",
	} {
		if got := ScalarText([]byte(raw)); got != want {
			t.Errorf("ScalarText(%s) = %q, want %q", raw, got, want)
		}
	}
}

// FuzzEachMember checks the walker against encoding/json on whatever JSON the fuzzer finds, and
// that it never panics on what is not JSON.
func FuzzEachMember(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,"x",{"b":[2]}]`, `{"q\"":"\\"}`, `{`, `[1,`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ok := EachMember(b, func(_, _ []byte) bool { return true })
		if !json.Valid(b) {
			return
		}
		if k := Kind(TrimSpace(b)); (k == '{' || k == '[') != ok {
			t.Fatalf("EachMember(%q) = %v for valid JSON", b, ok)
		}
		checkWalkMatchesEncodingJSON(t, b)
	})
}
