package server_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/outbound"
)

// internalTargets are addresses of the network behind the server, in the spellings a hostile
// tenant tries (SPEC §9): every one must be refused where a tenant sets a target.
var internalTargets = []string{
	"127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "localhost",
	"0.0.0.0", "[::]", "169.254.169.254", "10.0.0.5", "172.16.3.4", "192.168.1.1", "100.64.0.1", "[fd00::1]", "[fe80::1]",
}

// TestTenantTargetsOnPrivateNetworksAreRefused: a workflow URL, a Segment endpoint and a
// back-fill base URL naming an internal address are 400 naming the field, unless the operator
// allowed the range; a Segment endpoint must be https.
func TestTenantTargetsOnPrivateNetworksAreRefused(t *testing.T) {
	app := NewTestApp(t)
	app.Server.Outbound = outbound.New(nil) // the default: nothing private allowed
	tn := app.Tenant("A")
	tok := app.TenantToken(tn)
	src := app.createSource(tok, tn.ID, `{"name": "prod"}`)
	base := "/api/v1/tenants/" + tn.ID
	for _, host := range internalTargets {
		status, body, _ := app.Do("POST", base+"/workflows", tok, `{"name": "w", "event": "Signed Up", "url": "http://`+host+`:8080/admin"}`)
		if status != 400 || !strings.Contains(string(body), `"url: `) {
			t.Errorf("workflow url at %s: %d %s", host, status, body)
		}
		status, body, _ = app.Do("PUT", base+"/segment", tok, `{"write_key": "wk_ssrf_0001", "endpoint": "https://`+host+`"}`)
		if status != 400 || !strings.Contains(string(body), `"endpoint: `) {
			t.Errorf("segment endpoint at %s: %d %s", host, status, body)
		}
		status, body, _ = app.Do("POST", base+"/sources/"+src.ID+"/backfill", tok,
			`{"api_key": "sp-key", "from": "2026-11-25T00:00:00Z", "base_url": "https://`+host+`"}`)
		if status != 400 || !strings.Contains(string(body), `"base_url: `) {
			t.Errorf("back-fill base_url at %s: %d %s", host, status, body)
		}
	}
	for _, c := range []struct{ path, body, field string }{
		{"/segment", `{"write_key": "wk_ssrf_0001", "endpoint": "http://api.segment.io"}`, "endpoint: must be an https:// URL"},
		{"/sources/" + src.ID + "/backfill", `{"api_key": "sp-key", "from": "2026-11-25T00:00:00Z", "base_url": "https://sparkpost.example.com"}`, "base_url: must be SparkPost's API address"},
		{"/sources/" + src.ID + "/backfill", `{"api_key": "sp-key", "from": "2026-11-25T00:00:00Z", "base_url": "http://api.sparkpost.com"}`, "base_url: must be https"},
	} {
		status, body, _ := app.Do(map[bool]string{true: "PUT", false: "POST"}[c.path == "/segment"], base+c.path, tok, c.body)
		if status != 400 || !strings.Contains(string(body), c.field) {
			t.Errorf("%s %s: %d %s", c.path, c.body, status, body)
		}
	}
	// Public targets are fine; so are the operator's allowed ranges.
	if status, body, _ := app.Do("PUT", base+"/segment", tok, `{"write_key": "wk_ssrf_0001", "endpoint": "https://events.eu1.segmentapis.com"}`); status != 200 {
		t.Errorf("public endpoint: %d %s", status, body)
	}
	app.Server.Outbound = outbound.New(mustAllow(t, "10.0.0.0/8"))
	if status, body, _ := app.Do("POST", base+"/workflows", tok, `{"name": "w", "event": "Signed Up", "url": "http://10.0.0.5:8080/hook"}`); status != 201 {
		t.Errorf("allowed range: %d %s", status, body)
	}
	if status, body, _ := app.Do("POST", base+"/workflows", tok, `{"name": "w2", "event": "Signed Up", "url": "http://192.168.1.1/hook"}`); status != 400 {
		t.Errorf("range outside the allowed one: %d %s", status, body)
	}
}

func mustAllow(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := outbound.ParseAllow(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
