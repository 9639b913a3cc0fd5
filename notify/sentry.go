// Package notify pages humans about what Vigil did: alerts the detector
// raised and the responder's circuit breaker opening. The one sink is Sentry,
// reached through the sentry-go SDK with a client and hub of its own; the
// process-wide sentry.CurrentHub is never touched, so other code in the same
// binary may use Sentry as it likes.
package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/vigil-soc/vigil/event"
)

// Severities in increasing order; MinSeverity and event.Alert.Severity take
// one of these.
var severities = []string{"low", "medium", "high", "critical"}

const (
	defaultMinSeverity = "high"
	defaultTimeout     = 5 * time.Second
)

// Config configures the Sentry notifier. The zero value is valid and turns
// Sentry off.
type Config struct {
	// DSN is the Sentry project's DSN, e.g.
	// "https://<public key>@o1.ingest.sentry.io/<project>". Empty turns
	// Sentry off: New returns a Notifier whose methods do nothing. The
	// SENTRY_DSN environment variable is not consulted. The DSN prints as
	// <secret> in errors.
	DSN string
	// MinSeverity is the lowest alert severity that is sent: low, medium,
	// high or critical. Default "high". It does not apply to BreakerTripped,
	// which is always sent.
	MinSeverity string
	// Environment names the deployment ("production", "staging"). Empty
	// lets the SDK use SENTRY_ENVIRONMENT.
	Environment string
	// Release names the running version ("vigil@1.4.2"). Empty lets the SDK
	// pick one: SENTRY_RELEASE, the binary's VCS revision, or, failing both,
	// the output of `git describe` run in the working directory. Set it.
	Release string
	// ServerName names this host in Sentry. Default: the host name.
	ServerName string
	// Timeout bounds one HTTP request to Sentry, connect to response.
	// Default 5s.
	Timeout time.Duration
	// Logger receives the notifier's own log lines (enabled, dropped
	// events, flush timeouts). Default: discard.
	Logger *slog.Logger
}

// Validate reports every bad field at once, each named as in the config file
// ("sentry_dsn: ..."). It does no I/O.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DSN != "" {
		if _, err := sentry.NewDsn(c.DSN); err != nil {
			bad("sentry_dsn", "%s", dsnProblem(err, c.DSN))
		}
	}
	if c.MinSeverity != "" && !slices.Contains(severities, c.MinSeverity) {
		bad("sentry_min_severity", "must be one of %s, got %q", strings.Join(severities, ", "), c.MinSeverity)
	}
	if c.Timeout < 0 {
		bad("sentry_timeout", "must be >= 0 (0 means %s), got %s", defaultTimeout, c.Timeout)
	}
	return errors.Join(errs...)
}

// dsnProblem says what is wrong with a DSN without repeating it: the public
// key is a credential, and url.Parse errors quote the whole input.
func dsnProblem(err error, dsn string) string {
	var pe *sentry.DsnParseError
	if !errors.As(err, &pe) {
		return "invalid DSN"
	}
	msg := pe.Message
	if strings.HasPrefix(msg, "invalid url") {
		return "not a URL (want http(s)://<public key>@<host>/<project>)"
	}
	msg = strings.ReplaceAll(msg, dsn, "<secret>")
	return "invalid DSN: " + msg + " (want http(s)://<public key>@<host>/<project>)"
}

// Notifier sends alerts and breaker trips to Sentry. Its methods are safe for
// concurrent use, and a nil or disabled Notifier accepts every call and does
// nothing. Sending is asynchronous: the SDK queues events and a goroutine it
// owns posts them; Flush waits for the queue and Close stops that goroutine.
type Notifier struct {
	hub     *sentry.Hub     // nil when disabled
	httpTr  *http.Transport // ours, so Close can drop its idle connections
	minRank int
	log     *slog.Logger

	closed    atomic.Bool
	closeOnce sync.Once
}

// New validates cfg and, when cfg.DSN is set, builds a sentry.Client and a
// Hub of the Notifier's own. It connects to nothing: the first request goes
// out with the first event. With an empty DSN it returns a disabled Notifier
// and no error.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MinSeverity == "" {
		cfg.MinSeverity = defaultMinSeverity
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{minRank: severityRank(cfg.MinSeverity), log: log}
	if cfg.DSN == "" {
		return n, nil
	}

	// The SDK's default transport would be http.Transport{Proxy: from
	// environment} with a 30s client timeout; start from the standard
	// library's defaults instead (dial and TLS timeouts, HTTP/2) and keep the
	// transport so Close can release its connections.
	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		base = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	n.httpTr = base.Clone()
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:         cfg.DSN,
		Environment: cfg.Environment,
		Release:     cfg.Release,
		ServerName:  cfg.ServerName,
		HTTPClient:  &http.Client{Transport: n.httpTr, Timeout: cfg.Timeout},
		// Breadcrumbs would carry whatever a previous caller left on the
		// scope; our events are self-contained.
		MaxBreadcrumbs: -1,
	})
	if err != nil {
		// Validate accepted the DSN, so this is the SDK refusing something
		// else; still do not echo the DSN.
		return nil, fmt.Errorf("creating sentry client: %s", strings.ReplaceAll(err.Error(), cfg.DSN, "<secret>"))
	}
	n.hub = sentry.NewHub(client, sentry.NewScope())
	dsn, _ := sentry.NewDsn(cfg.DSN) // parsed fine in Validate
	log.Info("sentry notifier enabled", "host", dsn.GetHost(), "project", dsn.GetProjectID(),
		"min_severity", cfg.MinSeverity, "environment", client.Options().Environment, "release", client.Options().Release)
	return n, nil
}

// Enabled reports whether events are sent: a DSN was given and Close has not
// been called.
func (n *Notifier) Enabled() bool {
	return n != nil && n.hub != nil && !n.closed.Load()
}

// Alert queues a for Sentry and returns without waiting for the network. It
// sends only when a's severity is at least MinSeverity and a is not
// allow-listed (an allow-listed detection is recorded, not paged). An alert
// with an unknown or empty severity counts as medium, the detector's default.
// The caller keeps ownership of a; nothing in it is retained.
func (n *Notifier) Alert(a *event.Alert) {
	if !n.Enabled() || a == nil {
		return
	}
	if a.Allowlisted || severityRank(a.Severity) < n.minRank {
		return
	}
	if n.hub.CaptureEvent(alertEvent(a)) == nil {
		n.log.Warn("sentry event dropped", "rule", a.Rule, "alert_id", a.ID)
	}
}

// BreakerTripped queues a fatal-level event saying that the responder's
// circuit breaker opened and automatic bans stopped: count actions within
// window hit the limit for scope ("global" or a rule id). It is sent
// whatever MinSeverity says. It returns without waiting for the network.
func (n *Notifier) BreakerTripped(scope string, count int, window time.Duration) {
	if !n.Enabled() {
		return
	}
	if n.hub.CaptureEvent(breakerEvent(scope, count, window, time.Now())) == nil {
		n.log.Warn("sentry event dropped", "breaker_scope", scope)
	}
}

// Flush waits at most timeout for every event queued so far to be posted to
// Sentry, and reports whether that happened in time. A disabled Notifier has
// nothing queued and returns true; a closed one returns false. Call it on
// shutdown, before Close.
func (n *Notifier) Flush(timeout time.Duration) bool {
	if n == nil || n.hub == nil {
		return true
	}
	if n.closed.Load() {
		return false
	}
	if !n.hub.Flush(timeout) {
		n.log.Warn("sentry flush timed out; queued events may be lost", "timeout", timeout)
		return false
	}
	return true
}

// Close stops the SDK's goroutines and drops idle connections. Events still
// queued get one last attempt bounded by the SDK (about 5s, not
// configurable), so call Flush first to choose the bound. After Close the
// Notifier is disabled. Close is idempotent.
func (n *Notifier) Close() {
	if n == nil || n.hub == nil {
		return
	}
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.hub.Client().Close()
		n.httpTr.CloseIdleConnections()
	})
}

// severityRank orders severities; unknown and empty ones rank as medium,
// which is what the detector gives a rule that names none.
func severityRank(s string) int {
	if i := slices.Index(severities, s); i >= 0 {
		return i
	}
	return slices.Index(severities, "medium")
}
