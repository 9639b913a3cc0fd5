package csp

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// object is one decoded JSON object with the path it sits at, for error
// messages ("[1].csp-report").
type object struct {
	m    map[string]json.RawMessage
	path string
}

// decodeObject decodes raw, which must be a JSON object from a body that
// decodeTop accepted (so valid JSON). field names the key
// raw was found under ("" for an array element or the top level) and is
// reported on error.
func decodeObject(raw json.RawMessage, path, field string) (object, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return object{}, &Error{Status: 400, Field: field, Msg: fmt.Sprintf("%s: want an object, got %s", orTop(path), kind(raw))}
	}
	// raw is part of a body decodeTop found valid: split it in one pass.
	if m, ok := splitObject(raw); ok {
		return object{m: m, path: path}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return object{}, &Error{Status: 400, Field: field, Msg: fmt.Sprintf("%s: %v", orTop(path), err)}
	}
	return object{m: m, path: path}, nil
}

// orTop names the top level in messages.
func orTop(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// join appends key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// lookup returns the value of the first of keys present and not null.
func (o object) lookup(keys ...string) (key string, raw json.RawMessage, ok bool) {
	for _, k := range keys {
		if v, found := o.m[k]; found && !isNull(v) {
			return k, v, true
		}
	}
	return "", nil, false
}

func isNull(raw json.RawMessage) bool { return len(raw) == 4 && string(raw) == "null" }

// str returns the string value of the first of keys present, cut to limit
// bytes; "" when none is present or it is null. Any other JSON type is a
// 400 naming the key.
func (o object) str(limit int, keys ...string) (string, error) {
	k, raw, ok := o.lookup(keys...)
	if !ok {
		return "", nil
	}
	s, ok := decodeString(raw)
	if !ok {
		return "", o.bad(k, fmt.Sprintf("want a string, got %s", kind(raw)))
	}
	return truncate(s, limit), nil
}

// decodeString decodes a JSON string without the reflection of
// json.Unmarshal when it holds no escapes.
func decodeString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	plain := utf8.Valid(inner)
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// num returns the integer value of the first of keys present, which must
// lie in [0, limit]. JSON numbers and numeric strings are accepted (Safari
// and old browsers send strings), and so are integral floats ("5.0", 1e3);
// an empty string counts as absent. Anything else is a 400 naming the key.
func (o object) num(limit int64, keys ...string) (int64, error) {
	k, raw, ok := o.lookup(keys...)
	if !ok {
		return 0, nil
	}
	var text string
	switch raw[0] {
	case '"':
		s, ok := decodeString(raw)
		if !ok {
			return 0, o.bad(k, "want an integer, got a malformed string")
		}
		text = strings.TrimSpace(s)
		if text == "" {
			return 0, nil
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		text = string(raw)
	default:
		return 0, o.bad(k, fmt.Sprintf("want an integer, got %s", kind(raw)))
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(text, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, o.bad(k, fmt.Sprintf("want an integer, got %s", quote(text)))
		}
		n = int64(f)
	}
	if n < 0 || n > limit {
		return 0, o.bad(k, fmt.Sprintf("%d out of range [0, %d]", n, limit))
	}
	return n, nil
}

// bad is a 400 for key k of o.
func (o object) bad(k, msg string) *Error {
	return &Error{Status: 400, Field: k, Msg: fmt.Sprintf("%s: %s", join(o.path, k), msg)}
}

// truncate cuts s to at most n bytes at a UTF-8 boundary. A cut string is
// copied so it does not pin the (up to 64 KiB) original.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return strings.Clone(s[:i])
}
