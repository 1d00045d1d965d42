package airlock

import (
	"errors"
	"fmt"
)

// Kind classifies an error for callers. It is mapped to an HTTP status in
// exactly one place (internal/api) and to a CLI exit code in another.
type Kind string

// The error kinds. Anything not classified reaches the user as "internal
// error"; its detail goes to the log only.
const (
	Invalid         Kind = "invalid"
	NotFound        Kind = "not_found"
	Conflict        Kind = "conflict"
	Unauthenticated Kind = "unauthenticated"
	Forbidden       Kind = "forbidden"
	TooManyRequests Kind = "too_many_requests"
	TooLarge        Kind = "too_large"
	PasswordExpired Kind = "password_change_required"
	Unavailable     Kind = "unavailable"
	Internal        Kind = "internal"
)

// Error is the one application error type. Message is safe to show to the
// caller; Field names the offending input field when there is one.
type Error struct {
	Kind    Kind
	Message string
	Field   string
	Err     error // wrapped cause, never shown to callers
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an Invalid error naming the offending field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorKind returns the kind of the first *Error in err's chain, or
// Internal when there is none.
func ErrorKind(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// ErrorMessage returns the caller-safe message of err: the message of the
// first *Error in its chain, or "internal error".
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the field named by the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
