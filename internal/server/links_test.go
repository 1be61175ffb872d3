package server_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestListLinksAreNotHTMLEscaped: links.next is followed as given, so its "&" must be written as
// "&", not "\u0026" (gin's c.JSON escapes HTML; answers use PureJSON).
func TestListLinksAreNotHTMLEscaped(t *testing.T) {
	app := NewTestApp(t)
	for _, name := range []string{"A", "B"} {
		app.Tenant(name)
	}
	op := app.OperatorToken()
	status, body, _ := app.Do("GET", "/api/v1/tenants?limit=1", op, nil)
	if status != 200 || strings.Contains(string(body), `\u0026`) {
		t.Fatalf("list: %d %s", status, body)
	}
	var page struct {
		Links struct{ Next string } `json:"links"`
	}
	json.Unmarshal(body, &page)
	if !strings.Contains(page.Links.Next, "&limit=1") {
		t.Fatalf("links.next %q", page.Links.Next)
	}
	if status, body, _ := app.Do("GET", page.Links.Next, op, nil); status != 200 {
		t.Fatalf("following links.next: %d %s", status, body)
	}
}
