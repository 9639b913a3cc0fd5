package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-soc/vigil/event"
)

// Lockdown is an emergency lockdown: the JSON value at <prefix>lockdown that
// the Django middleware reads.
type Lockdown struct {
	// Mode is event.LockdownFull ("full": every request is refused) or
	// event.LockdownReadOnly ("read-only": only GET, HEAD and OPTIONS
	// pass).
	Mode string `json:"mode"`
	// Reason is a human explanation; the Django middleware shows it in its
	// 503 answers.
	Reason string `json:"reason"`
	// By is who asked: "rule:<id>" or "admin:<name>".
	By string `json:"by"`
	// Since is when the lockdown began (UTC, whole seconds).
	Since time.Time `json:"since"`
	// Until is when it ends by itself (UTC, whole seconds); zero means it
	// lasts until released.
	Until time.Time `json:"until,omitzero"`
}

// LockdownKey returns the key holding the lockdown.
func (s *Store) LockdownKey() string { return s.prefix + "lockdown" }

// DjangoLockdownKey returns the Django cache key that mirrors the lockdown
// (StoreOptions.DjangoCacheKey).
func (s *Store) DjangoLockdownKey() string { return s.opts.DjangoCacheKey }

// errUnreadable marks a value in Redis that is not what Vigil writes.
var errUnreadable = errors.New("unreadable value")

// lockdownScript turns a lockdown on. KEYS[1] lockdown key, KEYS[2] Django
// mirror. ARGV[1] the JSON value, ARGV[2] TTL in ms ("0": none), ARGV[3]
// channel, ARGV[4] message.
var lockdownScript = redis.NewScript(`
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], '1')
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`)

// releaseScript ends a lockdown. KEYS[1] lockdown key, KEYS[2] Django
// mirror. ARGV[1] channel, ARGV[2] message. It returns how many of the two
// keys it deleted and publishes only if that is not 0.
var releaseScript = redis.NewScript(`
local n = redis.call('DEL', KEYS[1], KEYS[2])
if n > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return n
`)

// SetLockdown turns lockdown l on, replacing any lockdown already on: it
// writes l as JSON at <prefix>lockdown and "1" at the Django cache key
// (integer text, the only kind of value an unmodified Django cache reads
// without unpickling), both with the TTL Until - now, or without one if
// Until is zero. It publishes {"type":"lockdown","mode":...,"by":...,
// "since":<unix seconds>,"until":<unix seconds, 0 if none>}.
//
// Mode must be "full" or "read-only"; Since defaults to now; Until, if set,
// must be at least a second away. Since and Until are stored in UTC, whole
// seconds (RFC 3339 text every Python can parse).
func (s *Store) SetLockdown(ctx context.Context, l Lockdown) error {
	now := s.now().UTC()
	if err := checkMode(l.Mode); err != nil {
		return fmt.Errorf("setting lockdown: %w", err)
	}
	if l.Since.IsZero() {
		l.Since = now
	}
	l.Since = l.Since.UTC().Truncate(time.Second)
	var ttl time.Duration
	var until int64
	if !l.Until.IsZero() {
		l.Until = l.Until.UTC().Truncate(time.Second)
		ttl = l.Until.Sub(now)
		if ttl < time.Second {
			return fmt.Errorf("setting lockdown: until %s: must be at least 1s from now", l.Until.Format(time.RFC3339))
		}
		until = l.Until.Unix()
	}
	value, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("setting lockdown: encoding: %w", err)
	}
	msg, err := json.Marshal(struct {
		Type  string `json:"type"`
		Mode  string `json:"mode"`
		By    string `json:"by"`
		Since int64  `json:"since"`
		Until int64  `json:"until"`
	}{"lockdown", l.Mode, l.By, l.Since.Unix(), until})
	if err != nil {
		return fmt.Errorf("setting lockdown: encoding message: %w", err)
	}
	err = lockdownScript.Run(ctx, s.client, []string{s.LockdownKey(), s.DjangoLockdownKey()},
		value, ttl.Milliseconds(), s.Channel(), msg).Err()
	if err != nil {
		return fmt.Errorf("setting lockdown: %w", err)
	}
	return nil
}

// ReleaseLockdown ends the lockdown, deleting both its keys, and reports
// whether one was on (either key existed). It publishes
// {"type":"lockdown-off","by":actor} only then.
func (s *Store) ReleaseLockdown(ctx context.Context, actor string) (released bool, err error) {
	msg, err := json.Marshal(struct {
		Type string `json:"type"`
		By   string `json:"by"`
	}{"lockdown-off", actor})
	if err != nil {
		return false, fmt.Errorf("releasing lockdown: encoding message: %w", err)
	}
	n, err := releaseScript.Run(ctx, s.client, []string{s.LockdownKey(), s.DjangoLockdownKey()},
		s.Channel(), msg).Int64()
	if err != nil {
		return false, fmt.Errorf("releasing lockdown: %w", err)
	}
	return n > 0, nil
}

// Lockdown returns the lockdown that is on, or nil, nil if none is. It
// reads <prefix>lockdown only: a Django mirror key set by hand without it
// is not reported.
func (s *Store) Lockdown(ctx context.Context) (*Lockdown, error) {
	v, err := s.client.Get(ctx, s.LockdownKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lockdown: %w", err)
	}
	var l Lockdown
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, fmt.Errorf("reading lockdown: %w: %w", errUnreadable, err)
	}
	return &l, nil
}

// checkMode checks a lockdown mode.
func checkMode(mode string) error {
	if mode != event.LockdownFull && mode != event.LockdownReadOnly {
		return fmt.Errorf("mode %q: must be %q or %q", mode, event.LockdownFull, event.LockdownReadOnly)
	}
	return nil
}

var _ Action = (*lockdownAction)(nil)

// lockdownAction puts the site into a lockdown.
type lockdownAction struct {
	store  *Store
	cfg    Config // with defaults applied
	logger *slog.Logger
}

// Do turns on a lockdown of spec.Mode (full if empty) for spec.Duration (0:
// until released). Its Reason names the alert, which is how a repeat of the
// alert is recognised ("unchanged"). An automatic lockdown never weakens
// one already on: the result has the stronger mode and the later end of
// the two (no end beats any), and if that is the lockdown already on,
// nothing changes ("unchanged").
func (l *lockdownAction) Do(ctx context.Context, a *event.Alert, spec event.ActionSpec) (event.Audit, error) {
	now := l.cfg.Now()
	au := baseAudit(a, event.ActionLockdown, now)
	mode := spec.Mode
	if mode == "" {
		mode = event.LockdownFull
	}
	if err := checkMode(mode); err != nil {
		return failed(au, fmt.Errorf("lockdown: %w", err))
	}
	d := time.Duration(spec.Duration)
	if d < 0 || (d > 0 && d < time.Second) {
		return failed(au, fmt.Errorf("lockdown: duration %s: must be 0 (until released) or at least 1s", d))
	}
	au.Duration = event.Duration(d)
	want := Lockdown{Mode: mode, Reason: au.Reason + " (alert " + a.ID + ")", By: au.Actor, Since: now}
	if d > 0 {
		want.Until = now.Add(d)
	}
	if l.cfg.DryRun {
		au.Result = ResultDryRun
		au.Expires = want.Until.UTC().Truncate(time.Second)
		l.logger.Info("dry-run: would lock down", "mode", mode, "duration", d, "rule", a.Rule, "alert", a.ID)
		return au, nil
	}

	cur, err := l.store.Lockdown(ctx)
	if err != nil && !errors.Is(err, errUnreadable) {
		return failed(au, err)
	}
	if err != nil {
		l.logger.Warn("replacing an unreadable lockdown", "err", err)
	}
	if cur != nil {
		if a.ID != "" && strings.Contains(cur.Reason, a.ID) {
			au.Result = ResultUnchanged
			au.Expires = cur.Until
			return au, nil
		}
		if stronger(cur.Mode, want.Mode) {
			want.Mode = cur.Mode
		}
		if cur.Until.IsZero() || (!want.Until.IsZero() && cur.Until.After(want.Until)) {
			want.Until = cur.Until
		}
		want.Since = cur.Since
		if want.Mode == cur.Mode && want.Until.Equal(cur.Until) {
			au.Result = ResultUnchanged
			au.Expires = cur.Until
			l.logger.Info("lockdown already on, as strong and as long", "mode", cur.Mode, "by", cur.By, "rule", a.Rule, "alert", a.ID)
			return au, nil
		}
	}
	if err := l.store.SetLockdown(ctx, want); err != nil {
		return failed(au, err)
	}
	au.Result = ResultApplied
	au.Expires = want.Until.UTC().Truncate(time.Second)
	l.logger.Warn("lockdown on", "mode", want.Mode, "until", want.Until, "rule", a.Rule, "alert", a.ID)
	return au, nil
}

// stronger reports whether lockdown mode a is stronger than b.
func stronger(a, b string) bool {
	return a == event.LockdownFull && b != event.LockdownFull
}
