package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestLogTenantReachesTheRequestLine: a hook has no :tid, so it hands the tenant it found to the
// log line with logTenant; a handler that does not leaves the line without one.
func TestLogTenantReachesTheRequestLine(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	var logs bytes.Buffer
	s := &Server{Config: Config{Log: slog.New(slog.NewJSONHandler(&logs, nil))}}
	r := gin.New()
	r.Use(s.logRequests)
	r.POST("/hooks/sparkpost/:sid", func(c *gin.Context) {
		logTenant(c, "ten_aaaaaaaaaaaaaaaa")
		c.Status(http.StatusUnauthorized) // a rejected call is still logged with the tenant it was aimed at
	})
	r.POST("/hooks/segment/:did", func(c *gin.Context) { c.Status(http.StatusNotFound) })

	for _, tc := range []struct{ path, tenant, key, id string }{
		{"/hooks/sparkpost/src_bbbbbbbbbbbbbbbb", "ten_aaaaaaaaaaaaaaaa", "source_id", "src_bbbbbbbbbbbbbbbb"},
		{"/hooks/segment/dst_cccccccccccccccc", "", "destination_id", "dst_cccccccccccccccc"},
	} {
		logs.Reset()
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", tc.path, nil))
		var line map[string]any
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("%s: log is not one JSON line: %q", tc.path, logs.String())
		}
		got, ok := line["tenant_id"]
		if tc.tenant == "" && ok || tc.tenant != "" && got != tc.tenant {
			t.Errorf("%s: tenant_id = %v (present %v); want %q", tc.path, got, ok, tc.tenant)
		}
		if line[tc.key] != tc.id {
			t.Errorf("%s: %s = %v; want %s", tc.path, tc.key, line[tc.key], tc.id)
		}
	}
}
