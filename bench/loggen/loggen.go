// Package loggen writes realistic synthetic nginx access logs, with the
// detections a correct detector must report, for the tests and benchmarks
// of Vigil's detector.
//
// The log is the traffic of a Django and React shop: browsing users,
// crawlers and API clients, mixed with actors a detector is meant to catch
// (directory scanners, login brute forcers, payload attackers) and decoys it
// must not (slow scanners, clients repeating one missing path, failed logins
// just under the threshold, a broken health checker). Output is a pure
// function of the Config: the same seed gives the same bytes.
//
// The expected detections (the truth) are not taken from the actors'
// intentions: a reference implementation of the rule semantics (see
// oracle.go) runs over every request as it is written, so the truth is what
// an exact detector reports on exactly these lines. The semantics, keyed by
// client IP (IPv4-mapped addresses unmapped), with windows over the logged
// event time (whole seconds, newest - oldest < 60 s):
//
//   - http-404-scan: 50 distinct paths (target up to '?') answered 404 in a
//     window.
//   - auth-bruteforce: 20 POSTs answered 401 or 403 to /api/auth/login/,
//     /api/token/, /accounts/login/, /admin/login/ or /login (the path
//     exactly) in a window.
//   - path-traversal, sql-injection, script-injection: one target whose raw,
//     once or twice percent-decoded form ('+' in the query a space), lower
//     cased, contains a signature of the class (see signatures).
//
// Every planted detection clears its threshold with a margin and none sits
// on a window's edge (the tests evaluate 56 s and 64 s windows too), so
// lines written up to 2 s late cannot change the outcome.
package loggen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Formats accepted by Config.Format.
const (
	// FormatCombined is nginx's predefined "combined" log format.
	FormatCombined = "combined"
	// FormatMain is the "main" format of the stock nginx.conf: combined
	// plus "$http_x_forwarded_for".
	FormatMain = "main"
	// FormatJSON is a log_format with escape=json and the keys time_local,
	// remote_addr, remote_user, request, status, body_bytes_sent,
	// http_referer and http_user_agent, all string values.
	FormatJSON = "json"
)

// Defaults applied by Generate and Follow to zero Config fields.
const (
	// DefaultRate is the default Config.Rate, in lines per second.
	DefaultRate = 2000
	// DefaultIPv6Share is the default Config.IPv6Share.
	DefaultIPv6Share = 0.15
	// DefaultJunk is the default Config.Junk.
	DefaultJunk = 0.001
)

// maxSpan is the longest log, in seconds of event time (about 30 years).
const maxSpan = 1e9

// DefaultStart is the event time of the first line when Config.Start is
// zero in Generate: a fixed instant, so output depends on the seed alone.
// It sits 25 s before a minute boundary so that even short logs cross one.
var DefaultStart = time.Date(2026, time.March, 2, 9, 59, 35, 0, time.UTC)

// Config says what to generate. The zero value of every field but Lines
// selects a default; for the actor counts, IPv6Share and Junk a negative
// value means none. Actors take at most 40% of the lines: those that do not
// fit, in a short log, are left out (Stats.Actors lists the ones planted).
type Config struct {
	// Lines is the number of lines to write, junk included. Required.
	Lines int
	// Seed selects the random stream; equal Configs give equal output.
	Seed int64
	// Start is the event time of the first line. Default DefaultStart
	// (Generate) or the current time (Follow). Timestamps are written in
	// Start's location.
	Start time.Time
	// Rate is the mean number of lines per second of event time, so the
	// log spans about Lines/Rate seconds. Default 2000. Follow writes at
	// this rate in wall time.
	Rate float64
	// Format is FormatCombined (default), FormatMain or FormatJSON.
	Format string

	// Scanners is the number of directory scanners (gobuster, ffuf, dirb,
	// nikto-like bursts of hundreds to thousands of distinct 404 paths),
	// each expected to fire http-404-scan. Default 40 for 1M lines, scaled
	// with the square root of Lines.
	Scanners int
	// SlowScanners is the number of scanners kept under the 404 threshold
	// (40 distinct paths a minute, 49 in a minute, two bursts of 45 apart),
	// which must not fire. Default 10 for 1M lines, scaled.
	SlowScanners int
	// BruteForcers is the number of clients POSTing 25-200 failed logins
	// to one login endpoint within a minute, each expected to fire
	// auth-bruteforce. Default 20 for 1M lines, scaled.
	BruteForcers int
	// Attackers is the number of clients sending a few path traversal, SQL
	// injection or script injection payloads (one class each, raw, single
	// or double percent-encoded), each expected to fire that class's rule.
	// Default 30 for 1M lines, scaled.
	Attackers int
	// Decoys is the number of clients that look suspicious and must not
	// fire (one missing path 300 times, 19 failed logins in a minute, 25
	// over five minutes, GETs to /login answered 401, a broken health
	// checker, ...). Default 40 for 1M lines, scaled.
	Decoys int
	// IPv6Share is the share of clients with IPv6 addresses, in [0, 1].
	// Default 0.15.
	IPv6Share float64
	// Junk is the share of lines that are not requests (TLS handshakes on
	// a plain HTTP port, empty requests, truncated lines), in [0, 0.5].
	// Default 0.001.
	Junk float64
	// Allowlisted is the number of scanners in 10.0.0.0/8 or
	// 192.168.0.0/16, the default allow-list: they fire and the truth marks
	// them allowlisted. Default 3 for 1M lines, scaled.
	Allowlisted int
}

// Truth is one detection an exact detector reports on the generated log.
type Truth struct {
	// Rule is the rule id: http-404-scan, auth-bruteforce, path-traversal,
	// sql-injection or script-injection.
	Rule string `json:"rule"`
	// Key is the client IP as netip.Addr.String(), IPv4-mapped IPv6
	// addresses unmapped.
	Key string `json:"key"`
	// Allowlisted is true when Key is in 10.0.0.0/8 or 192.168.0.0/16.
	Allowlisted bool `json:"allowlisted"`
	// Actor names the generated actor behind Key ("scanner-07"), or "user"
	// for ordinary traffic; it is for people reading a failed comparison.
	Actor string `json:"actor"`
}

// Stats reports what Generate or Follow wrote.
type Stats struct {
	// Lines is the number of lines written, junk included.
	Lines int
	// Junk is the number of junk lines among them.
	Junk int
	// Cut is the number of junk lines cut short: what a parser must skip.
	// The other junk lines are scanners' probes (a TLS handshake, no
	// request), sound lines that Vigil turns into probe events.
	Cut int
	// Truth is the expected detections on the lines written, sorted by rule
	// then key.
	Truth []Truth
	// Actors are the planted clients, in the order they were planned.
	Actors []Actor
}

// Generate writes cfg.Lines lines of access log to w, in event-time order
// except for about 0.1% of lines written up to 2 s late, as nginx workers
// do. It buffers its writes; w needs no buffering of its own.
func Generate(w io.Writer, cfg Config) (Stats, error) {
	st, _, err := generate(context.Background(), w, cfg, false)
	return st, err
}

// Follow writes like Generate but in real time: a line whose event time is
// t is written at wall time t, at cfg.Rate lines per second, and the output
// is flushed whenever Follow waits, so a tailing reader sees lines as they
// happen. Start defaults to the current time. Follow returns when cfg.Lines
// are written or, without error, when ctx is done; the truth then covers
// the lines written so far.
func Follow(ctx context.Context, w io.Writer, cfg Config) (Stats, error) {
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	st, _, err := generate(ctx, w, cfg, true)
	return st, err
}

// generate runs one generation and also returns its state, for tests.
func generate(ctx context.Context, w io.Writer, cfg Config, paced bool) (Stats, *gen, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Stats{}, nil, err
	}
	g := newGen(cfg)
	bw := bufio.NewWriterSize(w, 64<<10)
	var pace func(at int64) error
	if paced {
		pace = newPacer(ctx, cfg.Start, bw)
	}
	err = g.run(bw, pace)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing log: %w", ferr)
	}
	st := Stats{Lines: g.lines, Junk: g.junk, Cut: g.cut, Truth: g.truth(window)}
	for _, a := range g.actors {
		st.Actors = append(st.Actors, a.Actor)
	}
	return st, g, err
}

// newPacer returns a pace function that blocks until the event time at (ns
// after start) is reached on the wall clock, flushing bw before it waits.
func newPacer(ctx context.Context, start time.Time, bw *bufio.Writer) func(at int64) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	n := 0
	return func(at int64) error {
		n++
		d := time.Until(start.Add(time.Duration(at)))
		if d < 10*time.Millisecond {
			if n%1024 == 0 {
				return ctx.Err()
			}
			return nil
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("writing log: %w", err)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
			return nil
		}
	}
}

// withDefaults fills zero fields and checks the result, naming every bad
// field in one error.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("loggen: %s: "+format, append([]any{field}, args...)...))
	}
	if c.Lines <= 0 {
		bad("lines", "must be > 0, got %d", c.Lines)
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	switch {
	case c.Rate == 0:
		c.Rate = DefaultRate
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		bad("rate", "must be > 0, got %v", c.Rate)
	case float64(c.Lines)/c.Rate > maxSpan:
		bad("rate", "%v lines a second is too slow for %d lines: the log would span more than %v s", c.Rate, c.Lines, maxSpan)
	}
	switch c.Format {
	case "":
		c.Format = FormatCombined
	case FormatCombined, FormatMain, FormatJSON:
	default:
		bad("format", "unknown format %q (want combined, main or json)", c.Format)
	}
	c.IPv6Share = share(c.IPv6Share, DefaultIPv6Share)
	if !(c.IPv6Share >= 0 && c.IPv6Share <= 1) {
		bad("ipv6 share", "must be in [0, 1], got %v", c.IPv6Share)
	}
	c.Junk = share(c.Junk, DefaultJunk)
	if !(c.Junk >= 0 && c.Junk <= 0.5) {
		bad("junk", "must be in [0, 0.5], got %v", c.Junk)
	}
	scale := math.Sqrt(float64(max(c.Lines, 0)) / 1e6)
	c.Scanners = count(c.Scanners, 40, scale)
	c.SlowScanners = count(c.SlowScanners, 10, scale)
	c.BruteForcers = count(c.BruteForcers, 20, scale)
	c.Attackers = count(c.Attackers, 30, scale)
	c.Decoys = count(c.Decoys, 40, scale)
	c.Allowlisted = count(c.Allowlisted, 3, scale)
	return c, errors.Join(errs...)
}

// share applies the zero-means-default, negative-means-none convention to
// a share.
func share(v, def float64) float64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// count applies the zero-means-default, negative-means-none convention to
// an actor count, scaling the default for 1M lines.
func count(v, per1M int, scale float64) int {
	switch {
	case v < 0:
		return 0
	case v > 0:
		return v
	}
	return max(1, int(math.Round(float64(per1M)*scale)))
}
