package csp

import (
	"fmt"
	"strconv"
	"time"

	"github.com/vigil-soc/vigil/event"
)

// ParseLegacy parses a report-uri body (application/csp-report, or
// application/json): {"csp-report": {...}}. It also accepts the object
// without the wrapper when it names a document, blocked URI or directive
// (document-uri, blockedURI, effective-directive, ...), and a JSON array
// of either, which some proxies send to batch. Each report becomes one
// event with Format "report-uri" and Time meta.Received. A nil f means
// DefaultFilter(). Errors are *Error with Status 400; on error the Result
// is empty.
func ParseLegacy(body []byte, meta Meta, f *Filter) (Result, error) {
	elems, isArray, err := decodeTop(body)
	if err != nil {
		return Result{}, err
	}
	return parseLegacy(elems, isArray, meta, f)
}

func parseLegacy(elems []element, isArray bool, meta Meta, f *Filter) (Result, error) {
	f = orDefault(f)
	meta = fillMeta(meta)
	var res Result
	var o object
	for i, el := range elems {
		path := ""
		if isArray {
			path = "[" + strconv.Itoa(i) + "]"
		}
		if err := o.decode(el.text, path, ""); err != nil {
			return Result{}, err
		}
		if rep := o.v[mCSPReport]; rep != "" {
			if err := o.decode(rep, join(path, "csp-report"), "csp-report"); err != nil {
				return Result{}, err
			}
		} else if !o.has(bareMarkers...) {
			return Result{}, &Error{Status: 400, Field: "csp-report", Msg: fmt.Sprintf("%s: \"csp-report\" missing", orTop(path))}
		}
		ev, err := violation(&o, envelope{}, FormatReportURI, i, el.raw, &meta)
		if err != nil {
			return Result{}, err
		}
		res.add(ev, f)
	}
	return res, nil
}

// orDefault returns f, or the default filter for nil.
func orDefault(f *Filter) *Filter {
	if f == nil {
		return &defaultFilter
	}
	return f
}

// fillMeta replaces a zero Received with the current time.
func fillMeta(meta Meta) Meta {
	if meta.Received.IsZero() {
		meta.Received = time.Now()
	}
	return meta
}

// add keeps ev or counts it as filtered.
func (r *Result) add(ev event.Event, f *Filter) {
	if reason := f.drop(ev.CSP); reason != "" {
		if r.Filtered == nil {
			r.Filtered = make(map[string]int)
		}
		r.Filtered[reason]++
		return
	}
	r.Events = append(r.Events, ev)
}
