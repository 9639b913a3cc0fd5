// Package event defines the one event type every Vigil stage speaks: what a
// collector produces, what travels on the bus, what rules match and what is
// indexed. Field names follow the Elastic Common Schema (ECS) so Kibana and
// SIEM tooling read the events without mapping work.
//
// The package imports nothing else of Vigil's; everything imports it.
package event

import (
	"net/netip"
	"time"
)

// Sources: the collector family that produced an event. The source is the
// third token of the bus subject (vigil.events.<source>.<partition>).
const (
	SourceAccess = "access" // web server access logs (files, syslog)
	SourceCSP    = "csp"    // browser CSP violation reports
	SourceApp    = "app"    // application security events (Django)
)

// Event is one normalised security-relevant observation.
//
// Collectors may fill an Event whose string fields point into a buffer they
// reuse (see the accesslog parser); such an Event is valid only for the
// duration of the call it is passed to, and a consumer that keeps anything
// copies it. Events decoded from the bus own their strings.
type Event struct {
	// ID is a stable identifier derived from the source position (file
	// identity and offset, or a content hash); ECS event.id. Re-reading the
	// same input yields the same ID.
	ID string
	// Time is when it happened according to the source (the log timestamp,
	// the report's age), not when Vigil saw it; ECS @timestamp.
	Time time.Time
	// Source is one of SourceAccess, SourceCSP, SourceApp.
	Source string
	// Dataset is ECS event.dataset, e.g. "nginx.access" or "apache.access".
	Dataset string
	// Action is ECS event.action: what happened, in a word ("login-failed").
	Action string
	// Outcome is ECS event.outcome: "success", "failure" or "unknown".
	Outcome string

	// SourceIP is ECS source.ip, the client. IPv4-mapped IPv6 addresses are
	// unmapped to IPv4 by collectors.
	SourceIP netip.Addr

	// Method is ECS http.request.method, in the case the client sent it.
	Method string
	// Target is ECS url.original: the request target as sent, path and query.
	Target string
	// Path is ECS url.path: Target up to the '?', still percent-encoded.
	Path string
	// Query is ECS url.query: Target after the '?', without it.
	Query string
	// HTTPVersion is ECS http.version, e.g. "1.1".
	HTTPVersion string
	// Status is ECS http.response.status_code; 0 when unknown.
	Status int
	// BodyBytes is ECS http.response.body.bytes; -1 when unknown.
	BodyBytes int64
	// Referrer is ECS http.request.referrer.
	Referrer string
	// UserAgent is ECS user_agent.original.
	UserAgent string

	// UserName is ECS user.name, when known.
	UserName string
	// UserID is ECS user.id, when known.
	UserID string

	// RequestID is ECS http.request.id: the application's request id.
	RequestID string
	// Message is ECS message: a human description, e.g. the text of a
	// Django SuspiciousOperation.
	Message string
	// Name qualifies Action for application events: the SuspiciousOperation
	// subclass ("DisallowedHost"), or the kind an unknown event came with;
	// vigil.app.name.
	Name string
	// JTI is the JWT ID a token event is about; vigil.token.jti.
	JTI string

	// CSP is set for CSP violation reports (Source == SourceCSP), nil
	// otherwise.
	CSP *CSP
}

// CSP is a browser's Content Security Policy violation report, normalised
// from the legacy report-uri format and the Reporting API (Chrome, Firefox,
// Safari shapes). It is written under vigil.csp in JSON.
type CSP struct {
	// DocumentURI is the page the violation happened on (also url.original).
	DocumentURI string
	// BlockedURI is what was blocked: a URL, or a keyword such as inline,
	// eval, data, blob, wasm-eval.
	BlockedURI string
	// BlockedOrigin is scheme://host[:port] of BlockedURI, or the keyword
	// itself: what a rule groups violations of one source by.
	BlockedOrigin string
	// EffectiveDirective is the directive that was enforced
	// ("script-src-elem").
	EffectiveDirective string
	// ViolatedDirective as the browser reported it (legacy format only; old
	// Firefox put the whole directive with its sources here).
	ViolatedDirective string
	// OriginalPolicy is the policy text.
	OriginalPolicy string
	// Disposition is "enforce" or "report" (Report-Only policies).
	Disposition string
	// Sample is the start of the offending code when the policy has
	// 'report-sample'.
	Sample string
	// SourceFile, LineNumber and ColumnNumber locate the violation.
	SourceFile   string
	LineNumber   int
	ColumnNumber int
	// StatusCode is the HTTP status of the document.
	StatusCode int
	// Format is "report-uri" (legacy) or "reporting-api".
	Format string
	// AgeMillis is the Reporting API's age: how long after the violation
	// the report was sent.
	AgeMillis int64
}

// Reset clears e for reuse without giving up its storage.
func (e *Event) Reset() { *e = Event{BodyBytes: -1} }

// Category returns the ECS event.category values for the event's source.
func (e *Event) Category() []string {
	switch e.Source {
	case SourceApp:
		if e.Action == "login-failed" || e.Action == "login-succeeded" || e.Action == "token-reuse" {
			return []string{"authentication"}
		}
		return []string{"web"}
	default:
		return []string{"web"}
	}
}

// OutcomeFromStatus derives ECS event.outcome from an HTTP status code.
func OutcomeFromStatus(status int) string {
	switch {
	case status <= 0:
		return "unknown"
	case status < 400:
		return "success"
	default:
		return "failure"
	}
}
