// Package respond acts on alerts: it applies the actions a rule asks for
// (for now, IP bans in Redis for the Django middleware to enforce) and
// describes each as an audit entry.
//
// Every action is idempotent per alert: handling an alert again after a
// crash or a redelivery changes nothing and reports "unchanged". Errors say
// through Retryable whether the alert should be retried later (Redis is
// down) or given up (the alert itself is bad).
package respond

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-soc/vigil/event"
)

// Defaults of Config.
const (
	DefaultMaxBan     = 30 * 24 * time.Hour
	DefaultBanLength  = 72 * time.Hour
	DefaultIPv6Prefix = 128
)

// Config is the responder's configuration.
type Config struct {
	// DryRun makes the responder decide and audit every action without
	// doing it: nothing is written to Redis and audits say "dry-run".
	// Default false.
	DryRun bool
	// MaxBan caps the duration of any ban; a rule asking for more gets
	// MaxBan. Default 30 days (720h).
	MaxBan time.Duration
	// DefaultBan is the duration of a ban whose action names none.
	// Default 72h.
	DefaultBan time.Duration
	// IPv6PrefixLen widens bans of IPv6 addresses to the network of this
	// prefix length, since one client often holds a whole /64: 64 bans
	// 2001:db8:1:2::/64 for 2001:db8:1:2::7. Default 128 (the address
	// alone); IPv4 bans are always of the single address.
	IPv6PrefixLen int
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBan <= 0 {
		c.MaxBan = DefaultMaxBan
	}
	if c.DefaultBan <= 0 {
		c.DefaultBan = DefaultBanLength
	}
	if c.IPv6PrefixLen == 0 {
		c.IPv6PrefixLen = DefaultIPv6Prefix
	}
	return c
}

// Validate reports every bad field of c, after defaults, in one error.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MaxBan < time.Second {
		errs = append(errs, fmt.Errorf("max_ban: %s: must be at least 1s", c.MaxBan))
	}
	if c.DefaultBan < time.Second {
		errs = append(errs, fmt.Errorf("default_ban: %s: must be at least 1s", c.DefaultBan))
	}
	if c.IPv6PrefixLen < 1 || c.IPv6PrefixLen > 128 {
		errs = append(errs, fmt.Errorf("ipv6_prefix_len: %d: must be between 1 and 128", c.IPv6PrefixLen))
	}
	return errors.Join(errs...)
}

// Action is one kind of action a rule can ask for (event.ActionSpec.Kind).
//
// Responder.Handle calls Do once for each ActionSpec of that kind in an
// alert, except for allow-listed alerts, which it audits itself. Do must be
// idempotent per alert ID: a second call for the same alert (a redelivery,
// a retry after a crash) changes nothing and reports ResultUnchanged. Do
// must honour dry-run, does not keep a or spec after it returns, and may be
// called concurrently. It returns the audit of what it did; on error the
// audit has Result ResultFailed and Retryable(err) tells whether a later
// retry may succeed.
type Action interface {
	Do(ctx context.Context, a *event.Alert, spec event.ActionSpec) (event.Audit, error)
}

// Responder applies the actions an alert asks for. It is safe for
// concurrent use.
type Responder struct {
	actions map[string]Action
	now     func() time.Time
	logger  *slog.Logger
	metrics *Metrics
}

// NewResponder returns a Responder that keeps bans in store. Zero fields of
// cfg take their defaults. logger may be nil (no logs); m may be nil (no
// metrics).
func NewResponder(store *Store, cfg Config, logger *slog.Logger, m *Metrics) *Responder {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Responder{
		actions: map[string]Action{
			event.ActionBan: &banAction{store: store, cfg: cfg, logger: logger},
		},
		now:     store.now,
		logger:  logger,
		metrics: m,
	}
}

// Handle applies every action of a, in order, and returns one audit per
// action: Result "applied", "unchanged" (a repeat of this alert: nothing
// changed), "skipped-allowlisted" (a.Allowlisted: nothing done) or
// "dry-run". Audit IDs are a.ID + ":" + the action kind, so the audits of a
// redelivered alert repeat the same IDs and the audit stream can drop them.
//
// Handle stops at the first error and returns the audits of the actions
// done so far with it; they are true and may be published. If
// Retryable(err), retry is true: the caller should retry the whole alert
// later (the actions already done will report "unchanged"). Otherwise the
// alert cannot succeed and the last audit is the failed action's, with
// Result "failed" and Error set.
func (r *Responder) Handle(ctx context.Context, a *event.Alert) (audits []event.Audit, retry bool, err error) {
	audits = make([]event.Audit, 0, len(a.Actions))
	for _, spec := range a.Actions {
		if a.Allowlisted {
			au := baseAudit(a, spec.Kind, r.now())
			au.Target = a.Key
			au.Result = ResultAllowlisted
			r.logger.Info("allow-listed: not acting", "action", spec.Kind, "key", a.Key, "rule", a.Rule, "alert", a.ID)
			r.metrics.action(metricKind(spec.Kind), au.Result)
			audits = append(audits, au)
			continue
		}
		act, ok := r.actions[spec.Kind]
		if !ok {
			au := baseAudit(a, spec.Kind, r.now())
			au.Target = a.Key
			au.Result = ResultFailed
			err := fmt.Errorf("handling alert %s: unknown action kind %q", a.ID, spec.Kind)
			au.Error = err.Error()
			r.metrics.action(metricKind(spec.Kind), au.Result)
			return append(audits, au), false, err
		}
		au, err := act.Do(ctx, a, spec)
		r.metrics.action(spec.Kind, au.Result)
		if err != nil {
			err = fmt.Errorf("handling alert %s: %w", a.ID, err)
			if Retryable(err) {
				return audits, true, err
			}
			return append(audits, au), false, err
		}
		audits = append(audits, au)
	}
	return audits, false, nil
}

// RefreshActive reads the number of active bans from Redis and sets the
// vigil_respond_bans_active gauge; call it periodically.
func (r *Responder) RefreshActive(ctx context.Context) error {
	ban, _ := r.actions[event.ActionBan].(*banAction)
	n, err := ban.store.ActiveBans(ctx)
	if err != nil {
		return err
	}
	r.metrics.setBansActive(n)
	return nil
}

// baseAudit returns the fields every audit of action kind for a shares.
func baseAudit(a *event.Alert, kind string, now time.Time) event.Audit {
	return event.Audit{
		ID:      a.ID + ":" + kind,
		Time:    now.UTC(),
		Action:  kind,
		Actor:   "rule:" + a.Rule,
		Reason:  reason(a),
		AlertID: a.ID,
	}
}

// reason explains an alert in one line: "Too many distinct 404s (50 in
// 1m0s)".
func reason(a *event.Alert) string {
	s := a.Description
	if s == "" {
		s = "rule " + a.Rule + " fired"
	}
	if a.Count > 0 && a.Window > 0 {
		s += fmt.Sprintf(" (%d in %s)", a.Count, time.Duration(a.Window))
	}
	return s
}

// metricKind bounds the action label to known kinds.
func metricKind(kind string) string {
	if kind == event.ActionBan {
		return kind
	}
	return "unknown"
}
