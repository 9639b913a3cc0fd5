// Package appevent parses application security events that a web
// application (the vigil_django package) posts to Vigil's /events endpoint,
// and normalises them to event.Event.
//
// The body is one JSON object or an array of them:
//
//	{"kind": "auth.login_failed", "time": "2026-11-23T10:00:00.123Z",
//	 "client_ip": "203.0.113.7", "method": "POST", "path": "/api/token/",
//	 "status": 401, "request_id": "…", "user_agent": "…",
//	 "user": {"id": "42", "name": "alice"},
//	 "name": "DisallowedHost", "message": "…", "jti": "…"}
//
// kind is required; everything else is optional. Known kinds map to
// event.action values rules match on; an unknown kind is kept as action
// "unknown" with vigil.app.name set to the kind, and counted.
package appevent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-soc/vigil/event"
)

// Kinds and the event.action each becomes.
var kinds = map[string]struct {
	action, outcome string
	status          int
}{
	"http.forbidden":              {"http-forbidden", "failure", 403},
	"django.suspicious_operation": {"suspicious-operation", "failure", 400},
	"auth.login_failed":           {"login-failed", "failure", 0},
	"auth.login_succeeded":        {"login-succeeded", "success", 0},
	"auth.token_reuse":            {"token-reuse", "failure", 0},
	"auth.throttled":              {"throttled", "failure", 429},
}

// Kinds returns the known kinds.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	return out
}

// MaxEvents is the most events one request may carry.
const MaxEvents = 1000

// MaxAhead is how far ahead of its arrival an event's time may be (see
// ClampFuture).
const MaxAhead = 5 * time.Minute

// ClampFuture replaces the time of every event more than MaxAhead ahead of
// received, its arrival, with received, and returns how many it changed. A
// skewed clock or a forged time would otherwise have the detector drop the
// event as from the future, and an index file it under a year to come.
func ClampFuture(evs []event.Event, received time.Time) int {
	n := 0
	for i := range evs {
		if evs[i].Time.After(received.Add(MaxAhead)) {
			evs[i].Time = received.UTC()
			n++
		}
	}
	return n
}

// Error is a client error: the request is refused with Status (400) and
// nothing of it is published. Field names the JSON path at fault.
type Error struct {
	Status int
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Stats counts what a request held.
type Stats struct {
	// Unknown is the number of events of a kind Vigil does not know.
	Unknown int
}

// wire is one event as posted.
type wire struct {
	Kind      string          `json:"kind"`
	Time      string          `json:"time"`
	ClientIP  string          `json:"client_ip"`
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Status    json.RawMessage `json:"status"`
	RequestID string          `json:"request_id"`
	UserAgent string          `json:"user_agent"`
	User      *struct {
		ID   json.RawMessage `json:"id"`
		Name string          `json:"name"`
	} `json:"user"`
	Name    string `json:"name"`
	Message string `json:"message"`
	JTI     string `json:"jti"`
}

// Parse parses a request body. received is when it arrived: the time of
// events that carry none. request names the request: the same on every
// retry of it (from its Idempotency-Key), else unique. An event's id is a
// hash of request, the event's place in the body and its JSON, so a retry
// gives the same ids, and two identical events (two failed logins alike
// to the byte) get two. Either every event is returned or an *Error.
func Parse(body []byte, received time.Time, request string) ([]event.Event, Stats, error) {
	var st Stats
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, st, &Error{Status: http.StatusBadRequest, Msg: "empty body: expected a JSON object or array of events"}
	}
	var raws []json.RawMessage
	single := body[0] == '{'
	if single {
		raws = []json.RawMessage{body}
	} else if body[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, st, &Error{Status: http.StatusBadRequest, Msg: "malformed JSON: " + err.Error()}
		}
	} else {
		return nil, st, &Error{Status: http.StatusBadRequest, Msg: "expected a JSON object or array of events"}
	}
	if len(raws) == 0 {
		return nil, st, &Error{Status: http.StatusBadRequest, Msg: "no events"}
	}
	if len(raws) > MaxEvents {
		return nil, st, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("%d events in one request, at most %d", len(raws), MaxEvents)}
	}
	out := make([]event.Event, 0, len(raws))
	for i, raw := range raws {
		prefix := ""
		if !single {
			prefix = "[" + strconv.Itoa(i) + "]."
		}
		ev, unknown, err := parseOne(raw, received, prefix)
		if err != nil {
			return nil, st, err
		}
		ev.ID = eventID(request, i, raw)
		if unknown {
			st.Unknown++
		}
		out = append(out, ev)
	}
	return out, st, nil
}

func parseOne(raw json.RawMessage, received time.Time, prefix string) (event.Event, bool, error) {
	bad := func(field, format string, args ...any) (event.Event, bool, error) {
		return event.Event{}, false, &Error{Status: http.StatusBadRequest, Field: prefix + field, Msg: fmt.Sprintf(format, args...)}
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			if te.Field == "" {
				return event.Event{}, false, &Error{Status: http.StatusBadRequest, Field: strings.TrimSuffix(prefix, "."),
					Msg: "an event must be a JSON object, not " + jsonType(te.Value)}
			}
			return bad(te.Field, "must be %s", jsonType(te.Type.Kind().String()))
		}
		return event.Event{}, false, &Error{Status: http.StatusBadRequest, Field: strings.TrimSuffix(prefix, "."), Msg: "malformed JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		// A second object after the first is not an array of them.
		return event.Event{}, false, &Error{Status: http.StatusBadRequest, Field: strings.TrimSuffix(prefix, "."),
			Msg: "malformed JSON: data after the event object (send several events as an array)"}
	}
	if w.Kind == "" {
		return bad("kind", "required (one of %s, or any other dotted name)", strings.Join(sortedKinds(), ", "))
	}
	ev := event.Event{
		Source: event.SourceApp, Dataset: "app.security", Time: received.UTC(), BodyBytes: -1,
		Method: truncate(w.Method, 16), Path: truncate(w.Path, 2048), Target: truncate(w.Path, 2048),
		RequestID: truncate(w.RequestID, 128), UserAgent: truncate(w.UserAgent, 512),
		Name: truncate(w.Name, 128), Message: truncate(w.Message, 1024), JTI: truncate(w.JTI, 128),
	}
	k, known := kinds[w.Kind]
	if known {
		ev.Action, ev.Outcome, ev.Status = k.action, k.outcome, k.status
	} else {
		ev.Action, ev.Outcome = "unknown", "unknown"
		if ev.Name == "" {
			ev.Name = truncate(w.Kind, 128)
		}
	}
	if w.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			return bad("time", "%q is not an RFC 3339 time", truncate(w.Time, 64))
		}
		ev.Time = t.UTC()
	}
	if w.ClientIP != "" {
		ip, err := netip.ParseAddr(w.ClientIP)
		if err != nil {
			return bad("client_ip", "%q is not an IP address", truncate(w.ClientIP, 64))
		}
		ev.SourceIP = ip.Unmap().WithZone("")
	}
	if len(w.Status) > 0 && string(w.Status) != "null" {
		n, err := strconv.Atoi(strings.Trim(string(w.Status), `"`))
		if err != nil || n < 100 || n > 999 {
			return bad("status", "%s is not an HTTP status", truncate(string(w.Status), 16))
		}
		ev.Status = n
	}
	if w.User != nil {
		ev.UserName = truncate(w.User.Name, 256)
		id, err := userID(w.User.ID)
		if err != nil {
			return bad("user.id", "%v", err)
		}
		if len(id) > maxUserID {
			// Cut, it would name another user's revocation key.
			return bad("user.id", "longer than %d bytes", maxUserID)
		}
		ev.UserID = id
	}
	if i := strings.IndexByte(ev.Target, '?'); i >= 0 {
		ev.Path, ev.Query = ev.Target[:i], ev.Target[i+1:]
	}
	return ev, !known, nil
}

// eventID is the id of the i-th event of request, raw: "app-" and 24 hex
// digits of a SHA-256 over all three.
func eventID(request string, i int, raw []byte) string {
	h := sha256.New()
	var b [24]byte
	h.Write(strconv.AppendInt(b[:0], int64(len(request)), 10))
	h.Write([]byte{0})
	h.Write([]byte(request))
	h.Write(strconv.AppendInt(b[:0], int64(i), 10))
	h.Write([]byte{0})
	h.Write(raw)
	return "app-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// userID reads user.id, a JSON string or number (a primary key of any
// type, as text); "" when absent or null.
func userID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("must be a string or a number, not %s", truncate(string(raw), 32))
	}
	// A whole number in any spelling (42, 42.0, 4.2e1) is one key.
	if f, err := n.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10), nil
	}
	return n.String(), nil
}

// jsonType names the JSON type a Go kind decodes from, with its article.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "ptr", "struct":
		return "an object"
	case "int", "int64", "float64":
		return "a number"
	case "array", "object":
		return "an " + kind
	}
	return "a " + kind
}

func sortedKinds() []string {
	ks := Kinds()
	slices.Sort(ks)
	return ks
}

// maxUserID is the longest user.id: the longest id a revocation key takes.
const maxUserID = 256

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
