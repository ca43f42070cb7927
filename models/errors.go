package models

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// Error is the body of every failed API or plugin call. Code equals the HTTP
// status it travels with. JSON key order (Model, Key, Type, Messages, Code)
// matches DRP's.
type Error struct {
	// Object is the object the error is about; never serialised.
	Object any `json:"-"`
	// Model is the object prefix, e.g. "machines".
	Model string
	// Key is the object key.
	Key string
	// Type says what kind of operation failed ("GET", "INVOKE", "ValidationError", ...).
	Type string
	// Messages holds one line per problem.
	Messages []string
	// Code is the HTTP status to use.
	Code int
}

// NewError builds an Error with one formatted message.
func NewError(typ string, code int, format string, args ...any) *Error {
	e := &Error{Type: typ, Code: code}
	e.Errorf(format, args...)
	return e
}

// Errorf appends a formatted message.
func (e *Error) Errorf(format string, args ...any) {
	if len(args) == 0 {
		e.Messages = append(e.Messages, format)
		return
	}
	e.Messages = append(e.Messages, fmt.Sprintf(format, args...))
}

// AddError appends err: the messages of a *Error, or err.Error() otherwise.
// A nil err is ignored.
func (e *Error) AddError(err error) {
	if err == nil {
		return
	}
	if me, ok := err.(*Error); ok {
		if me == nil {
			return
		}
		e.Messages = append(e.Messages, me.Messages...)
		return
	}
	e.Messages = append(e.Messages, err.Error())
}

// HasError returns e when it carries at least one message, nil otherwise, so
// that a built-up Error can be returned as a plain error.
func (e *Error) HasError() error {
	if e == nil || len(e.Messages) == 0 {
		return nil
	}
	return e
}

// Error renders the string DRP's models.Error.Error() does, which drpcli
// and provctl print and PluginErrors carry: "<Type>: <Model>/<Key>" (the
// two joined and cleaned like path.Join), or "<Type>: <Model>" without a
// Key, or only "<Type>" without either; then ": <msg>" for one message, or
// each message on its own line indented by two spaces for several.
func (e *Error) Error() string {
	res := e.Type
	switch {
	case e.Key != "":
		res += ": " + path.Join(e.Model, e.Key)
	case e.Model != "":
		res += ": " + e.Model
	}
	switch len(e.Messages) {
	case 0:
		return res
	case 1:
		return res + ": " + e.Messages[0]
	default:
		return res + "\n  " + strings.Join(e.Messages, "\n  ")
	}
}

// MarshalJSON keeps Messages an array ([] rather than null only when set) and
// the key order stable.
func (e *Error) MarshalJSON() ([]byte, error) {
	type plain Error
	return json.Marshal((*plain)(e))
}

// AsError converts any error into a *Error, keeping an existing one and
// wrapping others with the given type and code.
func AsError(err error, typ string, code int) *Error {
	if err == nil {
		return nil
	}
	if me, ok := err.(*Error); ok {
		return me
	}
	return NewError(typ, code, "%s", err.Error())
}
