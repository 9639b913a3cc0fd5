package bus

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/vigil-soc/vigil/event"
)

// Batch format: a message on vigil.events.<source>.<partition> carries one
// or more events as NDJSON (one ECS JSON document per line), with headers
//
//	Nats-Msg-Id:    dedupe on re-send: <file>:<start>-<end>:<partition>.<part>
//	                for files, <random per process>-<sequence> for requests
//	Content-Type:   application/x-ndjson
//	Vigil-Events:   number of events in the body
//
// Batching is what lets a small machine carry 100k+ events/s through
// JetStream; a consumer reads a batch and acknowledges it as a whole.
const (
	HeaderCount       = "Vigil-Events"
	HeaderContentType = "Content-Type"
	ContentTypeNDJSON = "application/x-ndjson"
)

// Batch accumulates encoded events bound for one subject.
type Batch struct {
	Subject string
	Buf     []byte
	N       int
}

// Add appends ev to the batch.
func (b *Batch) Add(ev *event.Event) {
	b.Buf = ev.AppendJSON(b.Buf)
	b.Buf = append(b.Buf, '\n')
	b.N++
}

// Reset empties the batch, keeping its buffer.
func (b *Batch) Reset() { b.Buf, b.N = b.Buf[:0], 0 }

// Msg returns the batch as a NATS message with the given dedupe id. The
// message takes a copy of the body, so the batch can be reused at once.
func (b *Batch) Msg(id string) *nats.Msg {
	m := nats.NewMsg(b.Subject)
	m.Data = bytes.Clone(b.Buf)
	m.Header.Set(nats.MsgIdHdr, id)
	m.Header.Set(HeaderContentType, ContentTypeNDJSON)
	m.Header.Set(HeaderCount, strconv.Itoa(b.N))
	return m
}

// Take is Msg without the copy: the message owns the batch's buffer and
// the batch is left empty, with no buffer.
func (b *Batch) Take(id string) *nats.Msg {
	m := &nats.Msg{Subject: b.Subject, Data: b.Buf, Header: nats.Header{
		nats.MsgIdHdr:     {id},
		HeaderContentType: {ContentTypeNDJSON},
		HeaderCount:       {strconv.Itoa(b.N)},
	}}
	b.Buf, b.N = nil, 0
	return m
}

// DecodeBatch calls fn for every event in an NDJSON batch body. A line that
// does not decode is reported with its number and skipped; decoding goes on.
func DecodeBatch(data []byte, fn func(*event.Event)) (bad []error) {
	var ev event.Event
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := ev.UnmarshalJSON(line); err != nil {
			bad = append(bad, fmt.Errorf("event %d: %w", n, err))
			continue
		}
		fn(&ev)
	}
	return bad
}
