package csp

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-soc/vigil/event"
)

// member is a report key Vigil reads. A body's other keys are skipped.
type member uint8

// The members: the legacy wrapper, the Reporting API envelope, and the
// violation fields in each spelling.
const (
	mCSPReport member = iota
	mType
	mBody
	mAge
	mURL
	mUserAgent
	mDocumentURIHyphen
	mDocumentURL
	mDocumentURI
	mReferrer
	mBlockedURIHyphen
	mBlockedURL
	mBlockedURI
	mViolatedHyphen
	mViolated
	mEffectiveHyphen
	mEffective
	mPolicyHyphen
	mPolicy
	mDisposition
	mScriptSample
	mSample
	mSourceFileHyphen
	mSourceFile
	mLineHyphen
	mLine
	mColumnHyphen
	mColumn
	mStatusHyphen
	mStatus
	numMembers
)

// memberNames are the JSON keys of the members.
var memberNames = [numMembers]string{
	mCSPReport: "csp-report", mType: "type", mBody: "body", mAge: "age", mURL: "url", mUserAgent: "user_agent",
	mDocumentURIHyphen: "document-uri", mDocumentURL: "documentURL", mDocumentURI: "documentURI",
	mReferrer:         "referrer",
	mBlockedURIHyphen: "blocked-uri", mBlockedURL: "blockedURL", mBlockedURI: "blockedURI",
	mViolatedHyphen: "violated-directive", mViolated: "violatedDirective",
	mEffectiveHyphen: "effective-directive", mEffective: "effectiveDirective",
	mPolicyHyphen: "original-policy", mPolicy: "originalPolicy",
	mDisposition:  "disposition",
	mScriptSample: "script-sample", mSample: "sample",
	mSourceFileHyphen: "source-file", mSourceFile: "sourceFile",
	mLineHyphen: "line-number", mLine: "lineNumber",
	mColumnHyphen: "column-number", mColumn: "columnNumber",
	mStatusHyphen: "status-code", mStatus: "statusCode",
}

// members maps a JSON key to its member.
var members = func() map[string]member {
	m := make(map[string]member, numMembers)
	for i, name := range memberNames {
		m[name] = member(i)
	}
	return m
}()

// Keys of a violation, legacy spelling first. Both formats are read with
// the same lists: the Reporting API's camelCase names, the legacy
// hyphenated ones, and the SecurityPolicyViolationEvent names (documentURI,
// blockedURI, violatedDirective) that page scripts posting their own
// reports use.
var (
	keysDocument   = []member{mDocumentURIHyphen, mDocumentURL, mDocumentURI}
	keysReferrer   = []member{mReferrer}
	keysBlocked    = []member{mBlockedURIHyphen, mBlockedURL, mBlockedURI}
	keysViolated   = []member{mViolatedHyphen, mViolated}
	keysEffective  = []member{mEffectiveHyphen, mEffective}
	keysPolicy     = []member{mPolicyHyphen, mPolicy}
	keysDisp       = []member{mDisposition}
	keysSample     = []member{mScriptSample, mSample}
	keysSourceFile = []member{mSourceFileHyphen, mSourceFile}
	keysLine       = []member{mLineHyphen, mLine}
	keysColumn     = []member{mColumnHyphen, mColumn}
	keysStatus     = []member{mStatusHyphen, mStatus}
)

// bareMarkers are keys whose presence makes an unwrapped object a report
// body rather than garbage: any name of the document, blocked URI or
// directive.
var bareMarkers = slices.Concat(keysDocument, keysBlocked, keysViolated, keysEffective)

// envelope is what the Reporting API wraps around a violation body; the
// zero value for report-uri.
type envelope struct {
	age       int64  // milliseconds
	url       string // the report's url: the document, used when the body has none
	userAgent string
}

// violation reads the violation fields of o (a csp-report object or a
// Reporting API body) into an event. raw is the report as received and i
// its place in the body, for the ID.
func violation(o *object, env envelope, format string, i int, raw []byte, meta *Meta) (event.Event, error) {
	var c event.CSP
	var err error
	str := func(dst *string, limit int, keys []member) {
		if err == nil {
			*dst, err = o.str(limit, keys...)
		}
	}
	num := func(dst *int, keys []member) {
		if err == nil {
			var n int64
			n, err = o.num(math.MaxInt32, keys...)
			*dst = int(n)
		}
	}
	var disposition string
	str(&c.DocumentURI, maxURI, keysDocument)
	str(&c.BlockedURI, maxURI, keysBlocked)
	str(&c.ViolatedDirective, maxPolicy, keysViolated)
	str(&c.EffectiveDirective, maxDirective, keysEffective)
	str(&c.OriginalPolicy, maxPolicy, keysPolicy)
	str(&disposition, maxDirective, keysDisp)
	str(&c.Sample, maxSample, keysSample)
	str(&c.SourceFile, maxURI, keysSourceFile)
	num(&c.LineNumber, keysLine)
	num(&c.ColumnNumber, keysColumn)
	num(&c.StatusCode, keysStatus)
	var referrer string
	str(&referrer, maxURI, keysReferrer)
	if err != nil {
		return event.Event{}, err
	}

	switch d := strings.ToLower(strings.TrimSpace(disposition)); d {
	case "", "enforce":
		c.Disposition = "enforce"
	case "report":
		c.Disposition = "report"
	default:
		k, _, _ := o.lookup(keysDisp...)
		return event.Event{}, o.bad(k, "want \"enforce\" or \"report\", got "+quote(disposition))
	}
	if c.DocumentURI == "" {
		c.DocumentURI = env.url
	}
	if c.EffectiveDirective == "" {
		// Old Firefox and CSP 1 browsers send only violated-directive,
		// with the directive's source list after its name.
		if fields := strings.Fields(c.ViolatedDirective); len(fields) > 0 {
			c.EffectiveDirective = fields[0]
		}
	}
	c.EffectiveDirective = truncate(strings.ToLower(strings.TrimSpace(c.EffectiveDirective)), maxDirective)
	if c.DocumentURI == "" && c.BlockedURI == "" && c.EffectiveDirective == "" {
		// No browser sends this: nothing to attribute or count.
		field := o.path[strings.LastIndexByte(o.path, '.')+1:]
		return event.Event{}, &Error{Status: 400, Field: field,
			Msg: orTop(o.path) + ": an empty violation (no document, blocked URI or directive)"}
	}
	c.BlockedOrigin = BlockedOrigin(c.BlockedURI, c.DocumentURI)
	c.Format = format
	c.AgeMillis = env.age

	ev := event.Event{
		ID:        reportID(meta, i, raw),
		Time:      meta.Received.Add(-time.Duration(env.age) * time.Millisecond),
		Source:    event.SourceCSP,
		Dataset:   Dataset,
		Action:    Action,
		Outcome:   "unknown",
		SourceIP:  meta.ClientIP.Unmap(),
		Target:    c.DocumentURI,
		BodyBytes: -1,
		Referrer:  referrer,
		UserAgent: env.userAgent,
	}
	if c.Disposition == "enforce" {
		ev.Outcome = "failure"
	}
	if ev.UserAgent == "" {
		ev.UserAgent = truncate(meta.UserAgent, maxUserAgent)
	}
	ev.Path, ev.Query = pathQuery(c.DocumentURI)
	ev.CSP = &c
	return ev, nil
}

// pathQuery returns the escaped path and the raw query of a document URI,
// or "" and "" when it does not parse.
func pathQuery(uri string) (path, query string) {
	if p, ok := splitURL(uri); ok && plainPath(p.path) {
		return p.path, p.query
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", ""
	}
	return u.EscapedPath(), u.RawQuery
}

// reportID is the id of the i-th report of a request, raw: sha256 over
// the request's name, client IP, received Unix second, i and the raw JSON,
// in hex (see Meta.Request).
func reportID(meta *Meta, i int, raw []byte) string {
	h := sha256.New()
	var buf [64]byte
	h.Write(strconv.AppendInt(buf[:0], int64(len(meta.Request)), 10))
	h.Write([]byte{0})
	h.Write([]byte(meta.Request))
	b := meta.ClientIP.Unmap().AppendTo(buf[:0])
	b = append(b, 0)
	b = strconv.AppendInt(b, meta.Received.Unix(), 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, 0)
	h.Write(b)
	h.Write(raw)
	return hex.EncodeToString(h.Sum(buf[:0]))
}
