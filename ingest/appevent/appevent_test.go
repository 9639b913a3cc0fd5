package appevent

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-soc/vigil/event"
)

var received = time.Date(2026, 11, 23, 10, 0, 5, 0, time.UTC)

func TestParse(t *testing.T) {
	body := `[
	 {"kind":"auth.login_failed","time":"2026-11-23T10:00:00.123Z","client_ip":"::ffff:203.0.113.7","method":"POST",
	  "path":"/api/token/?next=/x","status":401,"request_id":"r1","user_agent":"curl/8","user":{"name":"alice"}},
	 {"kind":"django.suspicious_operation","client_ip":"198.51.100.2","name":"DisallowedHost","message":"Invalid HTTP_HOST header: 'evil'"},
	 {"kind":"auth.token_reuse","client_ip":"2001:db8::1","user":{"id":42},"jti":"f00d"},
	 {"kind":"auth.throttled","client_ip":"198.51.100.3"},
	 {"kind":"http.forbidden","client_ip":"198.51.100.4","path":"/admin/"},
	 {"kind":"auth.login_succeeded","client_ip":"198.51.100.5","user":{"id":"7","name":"bob"}},
	 {"kind":"billing.card_declined","client_ip":"198.51.100.6"}
	]`
	evs, st, err := Parse([]byte(body), received, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 || st.Unknown != 1 {
		t.Fatalf("%d events, %d unknown", len(evs), st.Unknown)
	}
	want := []struct {
		action, name, ip, user, userID, jti string
		status                              int
	}{
		{"login-failed", "", "203.0.113.7", "alice", "", "", 401},
		{"suspicious-operation", "DisallowedHost", "198.51.100.2", "", "", "", 400},
		{"token-reuse", "", "2001:db8::1", "", "42", "f00d", 0},
		{"throttled", "", "198.51.100.3", "", "", "", 429},
		{"http-forbidden", "", "198.51.100.4", "", "", "", 403},
		{"login-succeeded", "", "198.51.100.5", "bob", "7", "", 0},
		{"unknown", "billing.card_declined", "198.51.100.6", "", "", "", 0},
	}
	for i, w := range want {
		ev := evs[i]
		if ev.Source != event.SourceApp || ev.Action != w.action || ev.Name != w.name || ev.SourceIP.String() != w.ip ||
			ev.UserName != w.user || ev.UserID != w.userID || ev.JTI != w.jti || ev.Status != w.status || ev.ID == "" {
			t.Errorf("event %d = %+v, want %+v", i, ev, w)
		}
	}
	if !evs[0].Time.Equal(time.Date(2026, 11, 23, 10, 0, 0, 123e6, time.UTC)) || !evs[1].Time.Equal(received) {
		t.Errorf("times %v %v", evs[0].Time, evs[1].Time)
	}
	if evs[0].Path != "/api/token/" || evs[0].Query != "next=/x" {
		t.Errorf("path %q query %q", evs[0].Path, evs[0].Query)
	}
	// A retry of the request (the same name, from its Idempotency-Key)
	// gives the same ids, so it dedupes downstream; another request with
	// the same body gives others (Elasticsearch keeps both).
	again, _, _ := Parse([]byte(body), received.Add(time.Minute), "req-1")
	other, _, _ := Parse([]byte(body), received, "req-2")
	for i := range evs {
		if again[i].ID != evs[i].ID || other[i].ID == evs[i].ID {
			t.Errorf("event %d: id %s, retried %s, in another request %s: want the first two equal, the third not", i, evs[i].ID, again[i].ID, other[i].ID)
		}
	}
	// Two identical events in one request are two events.
	one := `{"kind":"auth.login_failed","client_ip":"203.0.113.7","user":{"name":"alice"}}`
	twins, _, err := Parse([]byte("["+one+","+one+"]"), received, "req-3")
	if err != nil {
		t.Fatal(err)
	}
	if twins[0].ID == twins[1].ID {
		t.Errorf("identical events of one request: both have id %s, want two", twins[0].ID)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ body, field, msg string }{
		{``, "", "empty body"},
		{`"x"`, "", "expected a JSON object or array"},
		{`[]`, "", "no events"},
		{`{"client_ip":"1.2.3.4"}`, "kind", "required"},
		{`[{"kind":"a.b"},{"kind":"a.b","client_ip":"1.2.3"}]`, "[1].client_ip", "not an IP"},
		{`{"kind":"a.b","time":"yesterday"}`, "time", "RFC 3339"},
		{`{"kind":"a.b","status":"abc"}`, "status", "not an HTTP status"},
		{`{"kind":7}`, "kind", "must be a string"},
		{`[{"kind":"a.b"},{"kind":"a.b","user":"x"}]`, "[1].user", "must be an object"},
		{`{"kind":"a.b"}{"kind":"a.b"}`, "", "data after the event object"},
		{`{"kind":"a.b"} garbage!!`, "", "data after the event object"},
		{`{"kind":"a.b","user":{"id":{"nested":[1,2]}}}`, "user.id", "must be a string or a number"},
		{`{"kind":"a.b","user":{"id":[42]}}`, "user.id", "must be a string or a number"},
		{`{"kind":"a.b","user":{"id":"` + strings.Repeat("x", 257) + `"}}`, "user.id", "longer than 256 bytes"},
		{`{"kind":"a.b"`, "", "malformed JSON"},
		{`[{"kind":"a.b"},5]`, "[1]", "an event must be a JSON object, not a number"},
		{`[["kind"]]`, "[0]", "an event must be a JSON object, not an array"},
		{"[" + strings.Repeat(`{"kind":"a.b"},`, MaxEvents) + `{"kind":"a.b"}]`, "", "at most 1000"},
	}
	for _, tc := range cases {
		_, _, err := Parse([]byte(tc.body), received, "req-1")
		var e *Error
		if !errors.As(err, &e) || e.Status != 400 || e.Field != tc.field || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("Parse(%.40q) = %v (field %q), want field %q and %q", tc.body, err, fieldOf(e), tc.field, tc.msg)
		}
	}
}

// TestUserID: user.id is read as JSON, a string (escapes decoded) or a
// number (its text), so it matches the key Django reads.
func TestUserID(t *testing.T) {
	for body, want := range map[string]string{
		`{"kind":"a.b","user":{"id":"\u0034\u0032\"x"}}`:    `42"x`,
		`{"kind":"a.b","user":{"id":42}}`:                   "42",
		`{"kind":"a.b","user":{"id":42.0}}`:                 "42",
		`{"kind":"a.b","user":{"id":4.2e1}}`:                "42",
		`{"kind":"a.b","user":{"id":12345678901234567890}}`: "12345678901234567890",
		`{"kind":"a.b","user":{"id":"caf\u00e9"}}`:          "café",
		`{"kind":"a.b","user":{"id":null,"name":"a"}}`:      "",
		`{"kind":"a.b","user":{"name":"a"}}`:                "",
	} {
		evs, _, err := Parse([]byte(body), received, "req-1")
		if err != nil {
			t.Errorf("Parse(%s): %v", body, err)
		} else if evs[0].UserID != want {
			t.Errorf("Parse(%s): user id %q, want %q", body, evs[0].UserID, want)
		}
	}
}

// TestFutureTime: ClampFuture makes a time more than MaxAhead past the
// arrival the arrival; one within it is kept.
func TestFutureTime(t *testing.T) {
	for body, want := range map[string]time.Time{
		`{"kind":"a.b","time":"9999-12-31T23:59:59Z"}`:                                       received,
		`{"kind":"a.b","time":"` + received.Add(time.Minute).Format(time.RFC3339Nano) + `"}`: received.Add(time.Minute),
		`{"kind":"a.b","time":"2020-01-01T00:00:00Z"}`:                                       time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		evs, _, err := Parse([]byte(body), received, "req-1")
		if err != nil {
			t.Fatalf("Parse(%s): %v", body, err)
		}
		ClampFuture(evs, received)
		if !evs[0].Time.Equal(want) {
			t.Errorf("Parse(%s): time %s, want %s", body, evs[0].Time, want)
		}
	}
}

// TestTruncateKeepsCharacters: a long field is cut on a character
// boundary, never inside one.
func TestTruncateKeepsCharacters(t *testing.T) {
	body := `{"kind":"a.b","name":"a` + strings.Repeat("é", 100) + `"}` // 201 bytes; byte 128 is inside an é
	evs, _, err := Parse([]byte(body), received, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if n := evs[0].Name; len(n) != 127 || !utf8.ValidString(n) {
		t.Fatalf("name cut to %d bytes, valid UTF-8 %v", len(n), utf8.ValidString(n))
	}
}

func fieldOf(e *Error) string {
	if e == nil {
		return "<nil>"
	}
	return e.Field
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.7","user":{"name":"a","id":1},"status":"401"}`))
	f.Add([]byte(`[{"kind":"x"},{"kind":"django.suspicious_operation","time":"2026-11-23T10:00:00Z"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, _, err := Parse(body, received, "req-1")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("error %v is not a 400 *Error", err)
			}
			return
		}
		for _, ev := range evs {
			if ev.Source != event.SourceApp || ev.Action == "" || ev.ID == "" {
				t.Fatalf("bad event %+v", ev)
			}
			var back event.Event
			if err := back.UnmarshalJSON(ev.AppendJSON(nil)); err != nil {
				t.Fatalf("event does not round-trip: %v", err)
			}
		}
	})
}
