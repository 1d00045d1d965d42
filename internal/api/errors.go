package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"unicode/utf8"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
)

// Status is the one mapping from error kind to HTTP status (the web pages
// use it too).
func Status(k airlock.Kind) int {
	switch k {
	case airlock.Invalid:
		return http.StatusBadRequest
	case airlock.NotFound:
		return http.StatusNotFound
	case airlock.Conflict:
		return http.StatusConflict
	case airlock.Unauthenticated:
		return http.StatusUnauthorized
	case airlock.Forbidden, airlock.PasswordExpired:
		return http.StatusForbidden
	case airlock.TooManyRequests:
		return http.StatusTooManyRequests
	case airlock.TooLarge:
		return http.StatusRequestEntityTooLarge
	case airlock.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable code, a message safe to show, and the
// offending field when there is one.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	kind := airlock.ErrorKind(err)
	if kind == airlock.Internal {
		log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path,
			"request_id", requestID(r.Context()), "err", err)
	}
	if kind == airlock.TooManyRequests {
		w.Header().Set("Retry-After", identity.RetryAfterHeader(err))
	}
	writeJSON(w, Status(kind), ErrorBody{Error: ErrorDetail{Code: string(kind), Message: airlock.ErrorMessage(err),
		Field: airlock.ErrorField(err), RequestID: requestID(r.Context())}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readJSON decodes a JSON request body, which must be one object,
// strictly: unknown fields are errors that name the field, and a body
// that would not arrive as sent (invalid UTF-8, a lone surrogate escape,
// data after the object) is refused.
func readJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" && !hasPrefix(ct, "application/json;") {
		return airlock.Errorf(airlock.Invalid, "expected Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return airlock.Errorf(airlock.TooLarge, "request body larger than %d bytes", tooLarge.Limit)
	}
	if err != nil {
		return airlock.Errorf(airlock.Invalid, "request body: %v", err)
	}
	// encoding/json would quietly replace invalid UTF-8 with U+FFFD, so a
	// value would not arrive as sent: refuse it instead.
	if !utf8.Valid(body) {
		return airlock.Errorf(airlock.Invalid, "request body is not valid UTF-8")
	}
	// Every request body is an object: an empty body or a null would
	// decode to a zero request without a word.
	switch start := bytes.TrimLeft(body, " \t\r\n"); {
	case len(start) == 0:
		return airlock.Errorf(airlock.Invalid, "request body is empty: expected a JSON object")
	case start[0] != '{':
		return airlock.Errorf(airlock.Invalid, "request body: expected a JSON object, not %s", jsonKind(start[0]))
	}
	// encoding/json would also turn a lone surrogate escape into U+FFFD.
	if err := loneSurrogate(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &airlock.Error{Kind: airlock.Invalid, Message: "invalid JSON body: " + err.Error()}
	}
	// Decode stops after the first value; what follows would be ignored.
	if off := dec.InputOffset(); len(bytes.TrimLeft(body[off:], " \t\r\n")) > 0 {
		return airlock.Errorf(airlock.Invalid, "request body: unexpected data after the JSON value (at byte %d)", off)
	}
	return nil
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
