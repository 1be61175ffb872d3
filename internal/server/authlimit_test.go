package server_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// clientFrom is an HTTP client whose connections come from a given loopback address.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestFailedAuthenticationIsThrottled: an address that keeps presenting wrong credentials is
// answered 429 with Retry-After; the source's rightful sender, from another address, is not.
func TestFailedAuthenticationIsThrottled(t *testing.T) {
	app := NewTestApp(t)
	tn := app.Tenant("A")
	src := app.createSource(app.TenantToken(tn), tn.ID, `{"name": "prod"}`)
	attacker, sparkpost := clientFrom("127.0.0.2"), clientFrom("127.0.0.1")
	post := func(c *http.Client, pass string) *http.Response {
		req, _ := http.NewRequest("POST", app.HTTP.URL+"/hooks/sparkpost/"+src.ID, strings.NewReader(`[]`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(src.Credentials.Username, pass)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	var throttled *http.Response
	for i := range 100 {
		resp := post(attacker, "guess-"+string(rune('a'+i%26)))
		if resp.StatusCode == http.StatusTooManyRequests {
			throttled = resp
			break
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", resp.StatusCode)
		}
	}
	if throttled == nil || throttled.Header.Get("Retry-After") == "" {
		t.Fatal("100 wrong passwords from one address were never throttled")
	}
	if resp := post(attacker, src.Credentials.Password); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the throttled address got %d", resp.StatusCode)
	}
	if resp := post(sparkpost, src.Credentials.Password); resp.StatusCode != http.StatusOK {
		t.Fatalf("SparkPost from another address: %d; a stranger's guesses must not lock it out", resp.StatusCode)
	}
	// Forged JWTs on the admin API, from a third address.
	forger := clientFrom("127.0.0.3")
	limited := false
	for range 100 {
		req, _ := http.NewRequest("GET", app.HTTP.URL+"/api/v1/tenants", nil)
		req.Header.Set("Authorization", "Bearer not.a.token")
		resp, err := forger.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("100 forged tokens from one address were never throttled")
	}
	if status, body, _ := app.Do("GET", "/api/v1/tenants", app.OperatorToken(), nil); status != 200 {
		t.Fatalf("the operator from another address: %d %s", status, body)
	}
}
