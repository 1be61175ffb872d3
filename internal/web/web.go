// Package web holds the HTTP conventions every handler shares: the error body and the code →
// status table, strict JSON decoding with a size limit, and the request id.
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// codes maps each domain error code to its HTTP status, in one place.
var codes = map[string]int{
	domain.EINVALID:        http.StatusBadRequest,
	domain.EUNAUTHORIZED:   http.StatusUnauthorized,
	domain.EFORBIDDEN:      http.StatusForbidden,
	domain.ENOTFOUND:       http.StatusNotFound,
	domain.EMETHOD:         http.StatusMethodNotAllowed,
	domain.ECONFLICT:       http.StatusConflict,
	domain.ETIMEOUT:        http.StatusRequestTimeout,
	domain.ETOOLARGE:       http.StatusRequestEntityTooLarge,
	domain.EUNSUPPORTED:    http.StatusUnsupportedMediaType,
	domain.ETOOMANY:        http.StatusTooManyRequests,
	domain.EUNAVAILABLE:    http.StatusServiceUnavailable,
	domain.EINTERNAL:       http.StatusInternalServerError,
	domain.ENOTIMPLEMENTED: http.StatusNotImplemented,
}

// Status returns the HTTP status for an error.
func Status(err error) int {
	if s, ok := codes[domain.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteError writes err as {"error": {code, message}} with its status. Internal errors are logged
// with the request id and answered with a generic message.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := Status(err)
	if status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusNotImplemented {
		log.Error("request failed", "request_id", RequestID(r.Context()), "method", r.Method, "error", err.Error())
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	var body ErrorBody
	body.Error.Code = domain.ErrorCode(err)
	body.Error.Message = domain.ErrorMessage(err)
	WriteJSON(w, status, body)
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// ReadBody reads at most limit bytes of the request body; a larger body is ETOOLARGE, one that
// misses the connection's read deadline ETIMEOUT.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, domain.Errorf(domain.ETOOLARGE, "request body is larger than %d bytes", limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, domain.Errorf(domain.ETOOLARGE, "request body is larger than %d bytes", limit)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, domain.Errorf(domain.ETIMEOUT, "the request body did not arrive in time (%d bytes came before the deadline); send it again, faster or smaller", len(b))
	} else if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "could not read the request body: %v", err)
	}
	return b, nil
}

// RequireJSON answers EUNSUPPORTED unless the request says its body is JSON. A missing
// Content-Type is accepted, because curl and many webhook senders omit it.
func RequireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return domain.Errorf(domain.EUNSUPPORTED, "Content-Type must be application/json, got %q", ct)
	}
	return nil
}

// DecodeJSON reads a JSON object body of at most limit bytes into dst (a pointer to a struct),
// refusing unknown fields, trailing data and wrong types with a message naming the field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	if err := RequireJSON(r); err != nil {
		return err
	}
	b, err := ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return Unmarshal(b, dst)
}

// Unmarshal is DecodeJSON's strict decoding of bytes already read.
func Unmarshal(b []byte, dst any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return domain.Errorf(domain.EINVALID, "request body is empty; a JSON object is expected")
	}
	if !utf8.Valid(b) {
		return domain.Errorf(domain.EINVALID, "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if dec.More() {
		return domain.Errorf(domain.EINVALID, "request body has data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return domain.Errorf(domain.EINVALID, "request body has data after the JSON value")
	}
	return nil
}

func jsonProblem(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return domain.Errorf(domain.EINVALID, "request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return domain.Errorf(domain.EINVALID, "request body must be a JSON object, not %s", typ.Value)
		}
		return domain.Errorf(domain.EINVALID, "%s: must be %s, not %s", typ.Field, jsonType(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Errorf(domain.EINVALID, "request body is not valid JSON: it ends early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return domain.Errorf(domain.EINVALID, "%s: unknown field", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	}
	return domain.Errorf(domain.EINVALID, "request body is not valid JSON: %v", err)
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	}
	return fmt.Sprintf("a %s", kind)
}

type ctxKey int

const requestIDKey ctxKey = 1

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}
