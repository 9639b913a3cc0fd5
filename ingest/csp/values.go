package csp

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// object is one report object split into the members Vigil reads, with
// the path it sits at for error messages ("[1].csp-report"). Values are
// raw JSON, sub-strings of the body; "" is an absent member.
type object struct {
	v    [numMembers]string
	path string
}

// decodeObject splits raw, which must be a JSON object from a body that
// decodeTop found valid, into o. field names the key raw was found under
// ("" for an array element or the top level) and is reported on error.
// Members Vigil does not read are skipped; a repeated member keeps its
// last value, as encoding/json does.
func (o *object) decode(raw, path, field string) error {
	*o = object{path: path}
	if len(raw) == 0 || raw[0] != '{' {
		return &Error{Status: 400, Field: field, Msg: fmt.Sprintf("%s: want an object, got %s", orTop(path), kind(raw))}
	}
	ok := eachMember(raw, func(key, value string) {
		if m, known := members[key]; known {
			o.v[m] = value
		}
	})
	if !ok { // not valid JSON: decodeTop should have refused it
		return &Error{Status: 400, Field: field, Msg: fmt.Sprintf("%s: malformed object", orTop(path))}
	}
	return nil
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

// has reports whether o has one of keys, even null.
func (o *object) has(keys ...member) bool {
	for _, k := range keys {
		if o.v[k] != "" {
			return true
		}
	}
	return false
}

// lookup returns the value of the first of keys present and not null.
func (o *object) lookup(keys ...member) (key member, raw string, ok bool) {
	for _, k := range keys {
		if v := o.v[k]; v != "" && v != "null" {
			return k, v, true
		}
	}
	return 0, "", false
}

func isNull(raw string) bool { return raw == "null" }

// str returns the string value of the first of keys present, cut to limit
// bytes; "" when none is present or it is null. Any other JSON type is a
// 400 naming the key.
func (o *object) str(limit int, keys ...member) (string, error) {
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

// decodeString decodes a JSON string. One without escapes and in valid
// UTF-8 is returned as a sub-string of raw, without a copy; others go
// through json.Unmarshal (which also replaces invalid UTF-8).
func decodeString(raw string) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if plain(inner) {
		return inner, true
	}
	var s string
	if json.Unmarshal([]byte(raw), &s) != nil {
		return "", false
	}
	return s, true
}

// plain reports whether the inside of a JSON string is its own value: no
// escapes, no control bytes, valid UTF-8.
func plain(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c < 0x20:
			return false
		case c >= 0x80:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}

// num returns the integer value of the first of keys present, which must
// lie in [0, limit]. JSON numbers and numeric strings are accepted (Safari
// and old browsers send strings), and so are integral floats ("5.0", 1e3);
// an empty string counts as absent. Anything else is a 400 naming the key.
func (o *object) num(limit int64, keys ...member) (int64, error) {
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
		text = raw
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
func (o *object) bad(k member, msg string) *Error {
	name := memberNames[k]
	return &Error{Status: 400, Field: name, Msg: fmt.Sprintf("%s: %s", join(o.path, name), msg)}
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
