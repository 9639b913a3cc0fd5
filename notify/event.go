package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/vigil-soc/vigil/event"
)

// The Sentry event shape. Alerts are grouped into one issue per rule and key
// kind (fingerprint), never one per IP; the key itself, whose cardinality is
// unbounded, lives in the "alert" context and never in a tag or the message.
const (
	fingerprintRoot = "vigil"
	alertContext    = "alert"
	breakerContext  = "breaker"
	// noKeyField stands for an empty KeyField (a global rule), as the
	// rules' group_by spells it, so the tag and fingerprint part are never
	// empty.
	noKeyField = "none"
	// breakerMessage is the message of every breaker event.
	breakerMessage = "circuit breaker open: automatic bans stopped"
	// globalScope stands for an empty breaker scope.
	globalScope = "global"
)

// levels maps an alert severity to a Sentry level.
var levels = map[string]sentry.Level{
	"critical": sentry.LevelFatal,
	"high":     sentry.LevelError,
	"medium":   sentry.LevelWarning,
	"low":      sentry.LevelInfo,
}

// alertEvent builds the Sentry event for a. It copies what it keeps, so a may
// change once it returns.
func alertEvent(a *event.Alert) *sentry.Event {
	keyField := a.KeyField
	if keyField == "" {
		keyField = noKeyField
	}
	msg := a.Rule
	if a.Description != "" {
		msg += ": " + a.Description
	}
	severity := a.Severity
	if severity == "" {
		severity = "medium" // the detector's default
	}
	level, ok := levels[severity]
	if !ok {
		level = sentry.LevelWarning // an unknown severity ranks as medium
	}

	actions := make([]map[string]string, 0, len(a.Actions))
	for _, s := range a.Actions {
		act := map[string]string{"kind": s.Kind}
		if s.Duration != 0 {
			act["duration"] = time.Duration(s.Duration).String()
		}
		actions = append(actions, act)
	}
	evidence := append([]string{}, a.Evidence...)

	ev := sentry.NewEvent()
	ev.EventID = eventID(a.ID)
	ev.Message = msg
	ev.Level = level
	ev.Timestamp = a.At
	ev.Fingerprint = []string{fingerprintRoot, a.Rule, keyField}
	ev.Tags = map[string]string{
		"rule":        a.Rule,
		"severity":    severity,
		"key_field":   keyField,
		"allowlisted": strconv.FormatBool(a.Allowlisted),
	}
	if a.Source != "" {
		ev.Tags["source"] = a.Source
	}
	ev.Contexts[alertContext] = sentry.Context{
		"alert_id":   a.ID,
		"key":        a.Key,
		"count":      a.Count,
		"window":     time.Duration(a.Window).String(),
		"at":         formatTime(a.At),
		"first_seen": formatTime(a.FirstSeen),
		"actions":    actions,
		"evidence":   evidence,
	}
	return ev
}

// breakerEvent builds the Sentry event for a breaker trip at now: fatal,
// because from here on Vigil only watches and a human has to decide.
// An empty scope is reported as "global".
func breakerEvent(scope string, count int, window time.Duration, now time.Time) *sentry.Event {
	if scope == "" {
		scope = globalScope
	}
	ev := sentry.NewEvent()
	ev.Message = breakerMessage
	ev.Level = sentry.LevelFatal
	ev.Timestamp = now
	ev.Fingerprint = []string{fingerprintRoot, "circuit-breaker", scope}
	ev.Tags = map[string]string{"breaker_scope": scope}
	ev.Contexts[breakerContext] = sentry.Context{
		"scope":  scope,
		"count":  count,
		"window": window.String(),
	}
	return ev
}

// eventID derives a Sentry event id (32 hex digits) from an alert id, which
// is deterministic, so an alert delivered twice is stored once by Sentry.
// An empty alert id lets the SDK pick a random event id.
func eventID(alertID string) sentry.EventID {
	if alertID == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(alertID))
	return sentry.EventID(hex.EncodeToString(sum[:16]))
}

// formatTime writes t as RFC 3339 in UTC, or "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
