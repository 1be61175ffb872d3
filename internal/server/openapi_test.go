package server_test

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/switchboard-hub/switchboard/api"
)

// TestRouterMatchesOpenAPI fails when a route exists that api/openapi.yaml lacks, or the reverse,
// so the published contract and the server cannot drift apart.
func TestRouterMatchesOpenAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	methods := map[string]bool{"get": true, "post": true, "put": true, "patch": true, "delete": true, "head": true, "options": true}
	inSpec := map[string]bool{}
	for path, item := range doc.Paths {
		for m := range item {
			if methods[m] {
				inSpec[strings.ToUpper(m)+" "+path] = true
			}
		}
	}
	param := regexp.MustCompile(`[:*]([A-Za-z_]+)`)
	inRouter := map[string]bool{}
	for _, r := range NewTestApp(t).Server.Routes() {
		inRouter[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var missing, extra []string
	for k := range inRouter {
		if !inSpec[k] {
			missing = append(missing, k)
		}
	}
	for k := range inSpec {
		if !inRouter[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the spec lacks:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("spec paths with no route:\n  %s", strings.Join(extra, "\n  "))
	}
	if len(inRouter) < 10 {
		t.Fatalf("only %d routes registered; the comparison is not looking at the real router", len(inRouter))
	}
}
