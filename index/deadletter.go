package index

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The dead-letter stream: documents Elasticsearch refused for good (a
// mapping conflict, a malformed document), one per message, so nothing is
// dropped silently. Subjects vigil.deadletter.<kind>, kind as in Kinds (or
// "unknown" for events of an unknown source). An operator fixes the cause
// and re-publishes DeadLetter.Document, or discards it.
const (
	StreamDeadLetter  = "VIGIL_DEADLETTER"
	SubjectDeadLetter = "vigil.deadletter"
)

// HeaderError carries the error type of a dead letter ("mapper_parsing_exception").
const HeaderError = "Vigil-Error"

// DeadLetter is the JSON body of a message on VIGIL_DEADLETTER.
type DeadLetter struct {
	// Kind is the document's kind (access, csp, app, alerts, audit).
	Kind string `json:"kind"`
	// Target is the alias or data stream it was written to.
	Target string `json:"target"`
	// ID is the document's _id.
	ID string `json:"id"`
	// Status is the HTTP status of Elasticsearch's answer for the
	// document; 0 when Vigil refused it before sending (not JSON).
	Status int `json:"status,omitempty"`
	// Error is Elasticsearch's error object for the document
	// ({"type": …, "reason": …, "caused_by": …}), or Vigil's in that shape.
	Error json.RawMessage `json:"error"`
	// Stream, Subject and Sequence locate the message the document came
	// in; Line is its 1-based line in an events batch (1 otherwise).
	Stream   string `json:"stream"`
	Subject  string `json:"subject"`
	Sequence uint64 `json:"seq"`
	Line     int    `json:"line"`
	// Time is when it was dead-lettered.
	Time time.Time `json:"time"`
	// Document is the document as it was sent, when it is JSON; Raw is
	// the line as it came otherwise.
	Document json.RawMessage `json:"document,omitempty"`
	Raw      string          `json:"raw,omitempty"`
}

// DeadLetterSubject returns the subject of dead letters of kind.
func DeadLetterSubject(kind string) string { return SubjectDeadLetter + "." + kind }

// EnsureDeadLetter creates or updates the dead-letter stream, keeping
// messages for maxAge (0: 30 days). New calls it; `vigil es setup` may too.
func EnsureDeadLetter(ctx context.Context, js jetstream.JetStream, maxAge time.Duration, replicas int) error {
	if maxAge <= 0 {
		maxAge = DefaultDeadLetterMaxAge
	}
	if replicas <= 0 {
		replicas = 1
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamDeadLetter,
		Description: "Documents Elasticsearch refused for good, with the error (JSON, see index.DeadLetter)",
		Subjects:    []string{SubjectDeadLetter + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      maxAge,
		Duplicates:  10 * time.Minute,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("creating stream %s: %w", StreamDeadLetter, err)
	}
	return nil
}

// deadLetterMsg builds the dead-letter message of document d of u. Its
// Nats-Msg-Id (stream:sequence:line) makes a repeat within the stream's
// duplicate window a no-op.
func deadLetterMsg(u *unit, d *doc) (*nats.Msg, error) {
	dl := DeadLetter{
		Kind:    d.kind,
		Target:  d.target,
		ID:      d.id,
		Status:  d.status,
		Error:   d.err,
		Stream:  u.stream,
		Subject: u.msg.Subject(),
		Line:    d.line,
		Time:    time.Now().UTC(),
	}
	if md, err := u.msg.Metadata(); err == nil {
		dl.Sequence = md.Sequence.Stream
	}
	if json.Valid(d.body) {
		dl.Document = d.body
	} else {
		dl.Raw = string(d.body)
	}
	if len(dl.Error) == 0 {
		dl.Error = errorJSON("unknown", "no error given")
	}
	data, err := json.Marshal(dl)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(DeadLetterSubject(d.kind))
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, u.stream+":"+strconv.FormatUint(dl.Sequence, 10)+":"+strconv.Itoa(d.line))
	var e struct{ Type string }
	if json.Unmarshal(d.err, &e) == nil && e.Type != "" {
		m.Header.Set(HeaderError, e.Type)
	}
	return m, nil
}
