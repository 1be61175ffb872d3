package api_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/switchboard-hub/switchboard/api"
)

// load parses doc as kin-openapi does, resolving every $ref inside it.
func load(t *testing.T, doc []byte) *openapi3.T {
	t.Helper()
	l := openapi3.NewLoader()
	l.IsExternalRefsAllowed = false // the contract is one self-contained file
	spec, err := l.LoadFromData(doc)
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	return spec
}

// TestOpenAPIDocumentIsValid31 holds api/openapi.yaml to OpenAPI 3.1: the structure of every
// object, resolvable references, path parameters that match their templates, unique
// operationIds, and every example checked against its schema under JSON Schema 2020-12 (so a
// 3.0 leftover such as `nullable: true` next to a null example fails).
func TestOpenAPIDocumentIsValid31(t *testing.T) {
	spec := load(t, api.OpenAPI)
	if !strings.HasPrefix(spec.OpenAPI, "3.1.") || !spec.IsOpenAPI31OrLater() || spec.IsOpenAPI32OrLater() {
		t.Fatalf("openapi: %q; the contract is written in OpenAPI 3.1", spec.OpenAPI)
	}
	if err := spec.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("api/openapi.yaml is not valid OpenAPI 3.1: %v", err)
	}
	ids := map[string]string{}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("operationId %q is used by %s and %s", op.OperationID, prev, where)
			}
			ids[op.OperationID] = where
		}
	}
	if len(ids) < 40 {
		t.Fatalf("only %d operations found; the document was not read as the API", len(ids))
	}
}

// TestOpenAPIValidatorRejectsBrokenDocuments shows that the validation above can fail: each
// document is the real one with one mistake of the kind that crept in before.
func TestOpenAPIValidatorRejectsBrokenDocuments(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
	}{
		{"unquoted description splits into stray keys",
			`stored: {type: integer, minimum: 0, description: "events new to the store"}`,
			`stored: {type: integer, minimum: 0, description: new to the store (not duplicates, not invalid)}`},
		{"3.0 nullable beside a null example",
			`additionalProperties: {type: [string, "null"]}
          example: {"$slack.email": "slack_email", "$whatsapp": null}`,
			`additionalProperties: {type: string, nullable: true}
          example: {"$slack.email": "slack_email", "$whatsapp": null}`},
		{"dangling reference",
			`{$ref: "#/components/schemas/TenantList"}`,
			`{$ref: "#/components/schemas/TenantPage"}`},
		{"path parameter not declared",
			`/api/v1/tenants/{tid}/workflows/{wid}:
    parameters: [{$ref: "#/components/parameters/tid"}, {name: wid, in: path, required: true, schema: {type: string}}]`,
			`/api/v1/tenants/{tid}/workflows/{wid}:
    parameters: [{$ref: "#/components/parameters/tid"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Count(api.OpenAPI, []byte(tc.old)) != 1 {
				t.Fatalf("the document no longer contains %q once; update this case", tc.old)
			}
			broken := bytes.Replace(api.OpenAPI, []byte(tc.old), []byte(tc.new), 1)
			l := openapi3.NewLoader()
			spec, err := l.LoadFromData(broken)
			if err == nil {
				err = spec.Validate(context.Background(), openapi3.EnableExamplesValidation())
			}
			if err == nil {
				t.Fatal("the broken document passed validation")
			}
			t.Logf("rejected: %.300s", err)
		})
	}
}
