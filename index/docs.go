package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
)

// Document states.
const (
	docPending = iota // to be sent
	docDone           // accepted by Elasticsearch
	docRetry          // refused with a retryable error: send again
	docDead           // refused for good: to the dead-letter stream
)

// kindUnknown is the kind of events whose subject names no known source.
const kindUnknown = "unknown"

// maxIDBytes is the longest _id Elasticsearch accepts; longer ids are
// replaced by their hash.
const maxIDBytes = 512

// doc is one document of a message.
type doc struct {
	kind   string
	target string
	id     string
	body   []byte // one line of JSON, without the newline
	line   int    // 1-based position in the message
	state  int
	status int             // of the last answer
	err    json.RawMessage // Elasticsearch's error object of the last answer, or ours
}

// unit is one JetStream message and its documents: it is acknowledged when
// every document is done or dead-lettered.
type unit struct {
	msg    jetstream.Msg
	stream string
	docs   []doc
	size   int // bytes the documents take in a bulk request
}

// errorJSON makes an error object like Elasticsearch's for documents
// refused before they were sent.
func errorJSON(typ, reason string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"type": typ, "reason": reason})
	return b
}

// newUnit splits a message of stream into documents bound for the write
// targets of namespace.
func newUnit(stream string, msg jetstream.Msg, namespace string) *unit {
	stored := time.Now()
	if md, err := msg.Metadata(); err == nil {
		stored = md.Timestamp
	}
	u := &unit{msg: msg, stream: stream}
	u.split(stream, msg.Subject(), msg.Data(), stored, namespace)
	return u
}

// split adds the documents of a message of stream, stored at stored.
func (u *unit) split(stream, subject string, data []byte, stored time.Time, namespace string) {
	switch stream {
	case bus.StreamEvents:
		u.addEvents(subject, data, namespace)
	case bus.StreamAlerts:
		u.addRecord(KindAlerts, data, stored, namespace)
	case bus.StreamAudit:
		u.addRecord(KindAudit, data, stored, namespace)
	}
	for i := range u.docs {
		u.size += len(u.docs[i].body) + len(u.docs[i].id) + len(u.docs[i].target) + 48
	}
}

// eventKind returns the source of an events subject,
// vigil.events.<source>.<partition>.
func eventKind(subject string) string {
	rest, ok := strings.CutPrefix(subject, bus.SubjectEvents+".")
	if !ok {
		return kindUnknown
	}
	source, _, _ := strings.Cut(rest, ".")
	switch source {
	case KindAccess, KindCSP, KindApp:
		return source
	}
	return kindUnknown
}

// addEvents adds one document per line of an NDJSON batch. The _id is the
// event's event.id, or a hash of the line when it has none; lines that are
// not JSON are dead at once.
func (u *unit) addEvents(subject string, data []byte, namespace string) {
	kind := eventKind(subject)
	target := Target(kind, namespace)
	var ev event.Event
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if bytes.IndexByte(line, '\r') >= 0 {
			// A carriage return is JSON whitespace, but a bulk body
			// must hold one document per line: compact it away.
			var b bytes.Buffer
			if json.Compact(&b, line) == nil {
				line = b.Bytes()
			}
		}
		d := doc{kind: kind, target: target, body: line, line: n}
		switch {
		case kind == kindUnknown:
			d.state, d.err = docDead, errorJSON("unknown_source", "subject "+subject+" names no known event source (access, csp, app)")
		case line[0] != '{' || !json.Valid(line):
			// Vigil's decoder is lenient about values it skips; what
			// goes to Elasticsearch must be strict JSON.
			d.state, d.err = docDead, errorJSON("invalid_json", "the line is not a JSON object")
		case ev.UnmarshalJSON(line) == nil:
			d.id = ev.ID
		default:
			// Valid JSON Vigil's decoder refuses (a field of the wrong
			// type): Elasticsearch decides; the _id still comes from
			// event.id if there is one.
			var v struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			}
			_ = json.Unmarshal(line, &v)
			d.id = v.Event.ID
		}
		d.id = docID(d.id, line)
		u.docs = append(u.docs, d)
	}
}

// addRecord adds an alert or audit entry: one JSON object per message, to
// which an @timestamp is added when it has none (alerts: their "at"; else
// the time the message was stored), so time-based dashboards and data
// streams work.
func (u *unit) addRecord(kind string, data []byte, stored time.Time, namespace string) {
	body := bytes.TrimSpace(data)
	d := doc{kind: kind, target: Target(kind, namespace), line: 1}
	var v struct {
		ID        string          `json:"id"`
		At        json.RawMessage `json:"at"`
		Timestamp json.RawMessage `json:"@timestamp"`
	}
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &v) != nil {
		d.body, d.state, d.err = body, docDead, errorJSON("invalid_json", "the message is not a JSON object")
		d.id = docID("", body)
		u.docs = append(u.docs, d)
		return
	}
	if bytes.ContainsAny(body, "\r\n") {
		var b bytes.Buffer
		if json.Compact(&b, body) == nil {
			body = b.Bytes()
		}
	}
	if len(v.Timestamp) == 0 {
		ts := v.At
		if len(ts) == 0 || ts[0] != '"' {
			ts, _ = json.Marshal(stored.UTC())
		}
		b := make([]byte, 0, len(body)+len(ts)+16)
		b = append(b, `{"@timestamp":`...)
		b = append(b, ts...)
		rest := bytes.TrimSpace(body[1:])
		if len(rest) > 0 && rest[0] != '}' {
			b = append(b, ',')
		}
		body = append(b, rest...)
	}
	d.body, d.id = body, docID(v.ID, body)
	u.docs = append(u.docs, d)
}

// docID returns id if it is usable as an Elasticsearch _id, else a hash of
// the document, so a redelivered document gets the same _id.
func docID(id string, body []byte) string {
	if id != "" && len(id) <= maxIDBytes {
		return id
	}
	sum := sha256.Sum256(body)
	return "sha256-" + hex.EncodeToString(sum[:16])
}
