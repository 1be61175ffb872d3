// Package domain holds the words every other package shares: error codes, ids, names, paging
// cursors, times and the settings of a source.
package domain

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in internal/web (codes); the set is stable because
// clients script against it.
const (
	EINVALID        = "invalid"            // 400: the input is wrong; Message says which field and why
	EUNAUTHORIZED   = "unauthorized"       // 401: credentials missing or bad
	EFORBIDDEN      = "forbidden"          // 403: authenticated, not allowed
	ENOTFOUND       = "not_found"          // 404
	EMETHOD         = "method_not_allowed" // 405
	ECONFLICT       = "conflict"           // 409
	ETIMEOUT        = "request_timeout"    // 408: the request body did not arrive in time
	ETOOLARGE       = "body_too_large"     // 413
	EUNSUPPORTED    = "unsupported_type"   // 415
	ETOOMANY        = "too_many_requests"  // 429: slow down; Retry-After says when
	EUNAVAILABLE    = "unavailable"        // 503: overloaded or shutting down; retry later
	EINTERNAL       = "internal"           // 500: a bug; the message is never shown
	ENOTIMPLEMENTED = "not_implemented"    // 501: configuration asks for something this build lacks
)

// Error is an error with a machine code and a message safe to show to the caller.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, EINTERNAL otherwise.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err; internal errors get a generic sentence
// so that their text (SQL, paths) never reaches a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
