package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// SparkPostTenant is a tenant with a Segment write key and a basic-auth SparkPost source.
type SparkPostTenant struct {
	ID, Token, WriteKey  string
	SourceID, WebhookURL string
	User, Pass           string
	Admin                *Client // with the tenant's token
	hook                 *Client // no token: the hook authenticates with Basic
	authHeader           string
}

// NewSparkPostTenant creates a tenant through the operator client, mints its token, registers
// writeKey (sent to endpoint at most rps requests/s; rps 0 means the default) and creates a source.
func NewSparkPostTenant(op *Client, name, endpoint, writeKey string, rps int) (*SparkPostTenant, error) {
	t := &SparkPostTenant{WriteKey: writeKey}
	var tenant struct{ ID string }
	if err := call(op, "POST", "/api/v1/tenants", map[string]any{"name": name}, 201, &tenant); err != nil {
		return nil, err
	}
	t.ID = tenant.ID
	var tok struct{ Token string }
	if err := call(op, "POST", "/api/v1/tenants/"+t.ID+"/tokens", map[string]any{"ttl": "2h"}, 201, &tok); err != nil {
		return nil, err
	}
	t.Token = tok.Token
	t.Admin = &Client{Base: op.Base, Token: t.Token, HTTP: op.HTTP}
	key := map[string]any{"write_key": writeKey, "endpoint": endpoint}
	if rps > 0 {
		key["max_requests_per_second"] = rps
	}
	if err := call(t.Admin, "PUT", "/api/v1/tenants/"+t.ID+"/segment", key, 200, nil); err != nil {
		return nil, err
	}
	var src struct {
		ID          string
		WebhookURL  string `json:"webhook_url"`
		Credentials struct{ Username, Password string }
	}
	if err := call(t.Admin, "POST", "/api/v1/tenants/"+t.ID+"/sources", map[string]any{"name": "SparkPost"}, 201, &src); err != nil {
		return nil, err
	}
	t.SourceID, t.WebhookURL, t.User, t.Pass = src.ID, src.WebhookURL, src.Credentials.Username, src.Credentials.Password
	t.hook = &Client{Base: op.Base, HTTP: op.HTTP}
	req, _ := http.NewRequest("POST", "http://x", nil)
	req.SetBasicAuth(t.User, t.Pass)
	t.authHeader = req.Header.Get("Authorization")
	return t, nil
}

// Post sends a batch to the source's hook as SparkPost does.
func (t *SparkPostTenant) Post(batch []byte, batchID string) (int, []byte, error) {
	h := []string{"Authorization", t.authHeader}
	if batchID != "" {
		h = append(h, "X-MessageSystems-Batch-ID", batchID)
	}
	return t.hook.Do("POST", "/hooks/sparkpost/"+t.SourceID, batch, h...)
}

// call sends v as JSON, expects status want and decodes the answer into out (if not nil).
func call(c *Client, method, path string, v any, want int, out any) error {
	body, _ := json.Marshal(v)
	status, b, err := c.Do(method, path, body)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: %d %s", method, path, status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// DeliveryBatch returns a SparkPost batch of n delivery events with ids prefix-0 … prefix-(n-1),
// each about size bytes (padded with a custom rcpt_meta field), as SparkPost would post it.
func DeliveryBatch(prefix string, n, size int) []byte {
	pad := ""
	if size > 300 {
		pad = strings.Repeat("x", size-300)
	}
	var b strings.Builder
	b.Grow(n * (size + 16))
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"msys":{"message_event":{"type":"delivery","event_id":"%s-%d","timestamp":"1460989507",`+
			`"message_id":"000443ee14578172be22","rcpt_to":"user%d@example.com","rcpt_meta":{"user_id":"u%d","note":"%s"},`+
			`"campaign_id":"bench","subject":"Benchmark","ip_address":"203.0.113.7"}}}`, prefix, i, i, i, pad)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// At returns the tenant as seen through a server at another base URL (the same data after a
// restart on a new port).
func (t *SparkPostTenant) At(base string) *SparkPostTenant {
	c := *t
	c.Admin = &Client{Base: base, Token: t.Token, HTTP: t.Admin.HTTP}
	c.hook = &Client{Base: base, HTTP: t.hook.HTTP}
	return &c
}
