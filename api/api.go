// Package api embeds the HTTP contract, api/openapi.yaml, which the server serves at /openapi.yaml
// and which a test holds the router to.
package api

import _ "embed"

// OpenAPI is the contents of openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
