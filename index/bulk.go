package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// bulkPath is the bulk endpoint with the answer cut down to what the
// indexer reads.
const bulkPath = "/_bulk?filter_path=errors,items.*.status,items.*.error"

// process indexes the documents of a bulk's units, retrying retryable
// refusals in place up to Config.Retries times, then finishes every unit.
func (ix *Indexer) process(ctx context.Context, units []*unit) {
	var pending []*doc
	for _, u := range units {
		for i := range u.docs {
			if u.docs[i].state == docPending {
				pending = append(pending, &u.docs[i])
			}
		}
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		ix.send(ctx, pending)
		retry := pending[:0]
		for _, d := range pending {
			if d.state == docRetry {
				retry = append(retry, d)
			}
		}
		pending = retry
		if len(pending) == 0 || attempt >= ix.cfg.Retries {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(250*time.Millisecond<<attempt, 5*time.Second)):
		}
		if ctx.Err() != nil {
			break
		}
	}
	for _, u := range units {
		ix.finish(ctx, u)
	}
}

// bulkItem is one item of a bulk answer.
type bulkItem struct {
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error"`
}

// send sends one bulk request with docs and sets each document's state
// from the answer.
func (ix *Indexer) send(ctx context.Context, docs []*doc) {
	mode := ix.cluster.Mode()
	op := "index"
	path := bulkPath + "&require_alias=true"
	if mode == ModeDataStream {
		op, path = "create", bulkPath
	}
	var body bytes.Buffer
	for _, d := range docs {
		body.WriteString(`{"` + op + `":{"_index":`)
		writeJSONString(&body, d.target)
		body.WriteString(`,"_id":`)
		writeJSONString(&body, d.id)
		body.WriteString("}}\n")
		body.Write(d.body)
		body.WriteByte('\n')
	}

	rctx, cancel := context.WithTimeout(ctx, ix.cfg.Timeout)
	began := time.Now()
	status, data, err := ix.cluster.do(rctx, http.MethodPost, path, body.Bytes(), "application/x-ndjson")
	cancel()
	ix.m.bulk.Observe(time.Since(began).Seconds())

	var answer struct {
		Items []map[string]bulkItem `json:"items"`
	}
	switch {
	case err != nil:
	case status != http.StatusOK:
		err = newESError(status, data)
	default:
		if jerr := json.Unmarshal(data, &answer); jerr != nil {
			err = fmt.Errorf("reading the bulk answer: %w", jerr)
		} else if len(answer.Items) != len(docs) {
			err = fmt.Errorf("the bulk answer has %d items for %d documents", len(answer.Items), len(docs))
		}
	}
	if err != nil {
		// The whole request failed: every document is retried. The
		// first failure is a warning, repeats while it lasts are debug.
		level := slog.LevelDebug
		if ix.Err() == nil && ctx.Err() == nil {
			level = slog.LevelWarn
		}
		ix.setErr(fmt.Errorf("bulk request: %w", err))
		ix.log.Log(ctx, level, "bulk request failed; retrying until Elasticsearch accepts it, the backlog waits in JetStream", "docs", len(docs), "err", err)
		reason := errorJSON("request_failed", err.Error())
		for _, d := range docs {
			d.state, d.status, d.err = docRetry, status, reason
			ix.m.errors.WithLabelValues(d.kind).Inc()
			ix.m.docs.WithLabelValues(d.kind, ResultRetried).Inc()
		}
		return
	}
	if ix.Err() != nil {
		ix.log.Info("Elasticsearch accepts bulk requests again")
	}
	ix.setErr(nil)

	missing := false
	for i, d := range docs {
		var it bulkItem
		for _, v := range answer.Items[i] {
			it = v
		}
		d.status, d.err = it.Status, it.Error
		d.state = classify(op, it.Status)
		switch d.state {
		case docDone:
			ix.m.docs.WithLabelValues(d.kind, ResultIndexed).Inc()
		case docRetry:
			ix.m.errors.WithLabelValues(d.kind).Inc()
			ix.m.docs.WithLabelValues(d.kind, ResultRetried).Inc()
			if it.Status == http.StatusNotFound {
				missing = true
			}
		case docDead:
			ix.m.errors.WithLabelValues(d.kind).Inc()
		}
	}
	if missing {
		// A write alias vanished (deleted by hand?): set up again, so the
		// retry finds it.
		ix.log.Warn("write target missing, running setup again")
		if err := ix.cluster.Setup(ctx); err != nil {
			ix.log.Error("setting up Elasticsearch", "err", err)
		}
	}
}

// classify tells what to do with a document from its bulk item status.
func classify(op string, status int) int {
	switch {
	case status == http.StatusOK || status == http.StatusCreated:
		return docDone
	case status == http.StatusConflict && op == "create":
		// create of an _id that exists: a redelivered document.
		return docDone
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return docRetry
	case status == http.StatusNotFound, // no write target (require_alias), until Setup fixes it
		status == http.StatusUnauthorized, status == http.StatusForbidden: // privileges or a read-only block: fix the cluster, not the document
		return docRetry
	default:
		return docDead
	}
}

// finish acknowledges u if every document is done or dead-lettered, and
// otherwise hands it back to JetStream for a delayed redelivery.
func (ix *Indexer) finish(ctx context.Context, u *unit) {
	retry := 0
	for i := range u.docs {
		if s := u.docs[i].state; s == docRetry || s == docPending {
			retry++
		}
	}
	if retry == 0 {
		err := ix.deadLetter(ctx, u)
		if err == nil {
			if err := u.msg.Ack(); err != nil {
				ix.log.Warn("acknowledging a message; it will be indexed again", "subject", u.msg.Subject(), "err", err)
			}
			return
		}
		ix.log.Error("storing dead letters, will retry", "subject", u.msg.Subject(), "err", err)
	}
	if ctx.Err() != nil {
		_ = u.msg.Nak() // shutting down: let the next indexer have it at once
		return
	}
	delay := ix.cfg.RetryDelay
	if md, err := u.msg.Metadata(); err == nil {
		for n := uint64(1); n < md.NumDelivered && delay < ix.cfg.RetryMaxDelay; n++ {
			delay *= 2
		}
	}
	delay = min(delay, ix.cfg.RetryMaxDelay)
	if err := u.msg.NakWithDelay(delay); err != nil {
		ix.log.Warn("handing a message back; it is redelivered after the ack wait", "subject", u.msg.Subject(), "err", err)
	}
}

// deadLetter stores u's dead documents in VIGIL_DEADLETTER.
func (ix *Indexer) deadLetter(ctx context.Context, u *unit) error {
	var errs []error
	for i := range u.docs {
		d := &u.docs[i]
		if d.state != docDead {
			continue
		}
		m, err := deadLetterMsg(u, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = ix.js.PublishMsg(pctx, m)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("publishing to %s: %w", m.Subject, err))
			continue
		}
		ix.m.docs.WithLabelValues(d.kind, ResultDeadLetter).Inc()
		ix.log.Warn("document refused by Elasticsearch, stored in "+StreamDeadLetter,
			"kind", d.kind, "id", d.id, "status", d.status, "error", string(d.err))
	}
	return errors.Join(errs...)
}

// writeJSONString writes s as a JSON string.
func writeJSONString(b *bytes.Buffer, s string) {
	data, _ := json.Marshal(s)
	b.Write(data)
}
