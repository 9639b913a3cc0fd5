package csp

import (
	"fmt"
	"strconv"
)

// Reporting API report types.
const (
	// TypeCSPViolation is the type of a CSP violation report.
	TypeCSPViolation = "csp-violation"
	// typeCSPOld is the type the Reporting API draft's sample report used
	// until 2020 (w3c/reporting#210); accepted in case a browser sent it.
	typeCSPOld = "csp"
)

// otherTypes are the Reporting API report types counted by name in
// Result.Other; any other type is counted as "other".
var otherTypes = map[string]bool{
	"deprecation":                            true,
	"intervention":                           true,
	"crash":                                  true,
	"coep":                                   true,
	"coop":                                   true,
	"document-policy-violation":              true,
	"permissions-policy-violation":           true,
	"potential-permissions-policy-violation": true,
	"network-error":                          true,
	"integrity-violation":                    true,
	"csp-hash":                               true,
	"test":                                   true,
}

// ParseReports parses a Reporting API body (application/reports+json): a
// JSON array of {age, body, type, url, user_agent}. Reports of type
// "csp-violation" (and "csp", the type of early drafts) become events with
// Format "reporting-api", Time meta.Received minus age, and UserAgent the
// report's user_agent; reports of other types are counted in
// Result.Other. A single report object without the array is accepted too.
// A nil f means DefaultFilter(). Errors are *Error with Status 400; on
// error the Result is empty.
func ParseReports(body []byte, meta Meta, f *Filter) (Result, error) {
	elems, isArray, err := decodeTop(body)
	if err != nil {
		return Result{}, err
	}
	return parseReports(elems, isArray, meta, f)
}

func parseReports(elems []element, isArray bool, meta Meta, f *Filter) (Result, error) {
	f = orDefault(f)
	meta = fillMeta(meta)
	var res Result
	var o, bo object
	for i, el := range elems {
		path := ""
		if isArray {
			path = "[" + strconv.Itoa(i) + "]"
		}
		if err := o.decode(el.text, path, ""); err != nil {
			return Result{}, err
		}
		typ, err := o.str(maxDirective, mType)
		if err != nil {
			return Result{}, err
		}
		switch typ {
		case TypeCSPViolation, typeCSPOld:
		case "":
			return Result{}, &Error{Status: 400, Field: "type", Msg: fmt.Sprintf("%s: \"type\" missing", orTop(path))}
		default:
			if !otherTypes[typ] {
				typ = "other"
			}
			if res.Other == nil {
				res.Other = make(map[string]int)
			}
			res.Other[typ]++
			continue
		}
		var env envelope
		age, err := o.num(MaxAge.Milliseconds(), mAge)
		if err != nil {
			return Result{}, err
		}
		env.age = age
		if env.url, err = o.str(maxURI, mURL); err != nil {
			return Result{}, err
		}
		if env.userAgent, err = o.str(maxUserAgent, mUserAgent); err != nil {
			return Result{}, err
		}
		b := o.v[mBody]
		if b == "" || isNull(b) {
			return Result{}, &Error{Status: 400, Field: "body", Msg: fmt.Sprintf("%s: \"body\" missing", orTop(path))}
		}
		if err := bo.decode(b, join(path, "body"), "body"); err != nil {
			return Result{}, err
		}
		ev, err := violation(&bo, env, FormatReportingAPI, i, el.raw, &meta)
		if err != nil {
			return Result{}, err
		}
		res.add(ev, f)
	}
	return res, nil
}
