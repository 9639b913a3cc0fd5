package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/accesslog"
	"github.com/vigil-soc/vigil/replay"
	"github.com/vigil-soc/vigil/respond"
)

func cmdReplay(ctx context.Context, args []string) error {
	fs := newFlagSet("replay", `vigil replay [--json] [--config FILE] [--apply] FILE...

Runs the rule engine over access log files as fast as the machine allows
and prints each detection. Files are read oldest first, by the time of their
first line, whatever order they are given in (access.log* expands newest
first); '-' is stdin, read first; *.gz is decompressed. Files that overlap in time (two
virtual hosts) are read one after the other, not interleaved: a key's
events from the second count when within --lateness of its newest event.
Windows are event-time, as live; unlike live mode, old events count.
Nothing is written to Redis unless --apply is given.`)
	jsonOut := fs.Bool("json", false, "print one JSON object per detection (rule, key, at, count, allowlisted, ...)")
	apply := fs.Bool("apply", false, "apply the detections' actions (bans) to Redis, as the live responder would")
	format := fs.String("format", "auto", "log format: auto, nginx-combined, nginx-main, apache-combined, nginx-json")
	workers := fs.Int("workers", 0, "parsing goroutines (default: GOMAXPROCS)")
	quiet := fs.Bool("quiet", false, "no progress and no summary on a terminal")
	load := configFlags(fs)
	if err := parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	f, err := accesslog.ParseFormat(*format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	rs, err := app.LoadRules(cfg.Rules)
	if err != nil {
		return err
	}
	allow, err := detect.NewAllowlist(cfg.Allowlist)
	if err != nil {
		return err
	}
	var inputs []replay.Input
	for _, name := range fs.Args() {
		in, closeFn, err := openLog(name)
		if err != nil {
			return err
		}
		defer closeFn()
		inputs = append(inputs, replay.Input{Name: name, R: in})
	}
	if inputs, err = orderInputs(inputs, f, !*quiet); err != nil {
		return err
	}

	var responder *respond.Responder
	if *apply {
		opts, err := redis.ParseURL(cfg.Redis)
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		client := redis.NewClient(opts)
		defer client.Close()
		store := respond.NewStore(client, cfg.RedisPrefix, time.Now)
		if err := store.Ping(ctx); err != nil {
			return fmt.Errorf("--apply: cannot reach Redis at %s: %w", app.Redact(cfg.Redis), err)
		}
		responder = respond.NewResponder(store, respond.Config{DryRun: cfg.DryRun, MaxBan: cfg.MaxBan}, newLogger(cfg, os.Stderr), nil)
	}

	out := os.Stdout
	enc := json.NewEncoder(out)
	tty := isTerminal(os.Stderr) && !*quiet
	var applyErr error
	onAlert := func(a event.Alert) {
		if *jsonOut {
			_ = enc.Encode(a)
		} else {
			if tty {
				fmt.Fprint(os.Stderr, "\r\033[K")
			}
			flag := ""
			if a.Allowlisted {
				flag = "  (allow-listed: no action)"
			}
			fmt.Fprintf(out, "%s  %-18s %-28s count=%d%s\n", a.At.Format(time.RFC3339), a.Rule, a.Key, a.Count, flag)
		}
		if responder != nil && applyErr == nil {
			audits, _, err := responder.Handle(ctx, &a)
			if err != nil {
				applyErr = fmt.Errorf("applying %s for %s: %w", a.Rule, a.Key, err)
			}
			for _, au := range audits {
				fmt.Fprintf(os.Stderr, "applied: %s %s %s until %s\n", au.Action, au.Target, au.Result, au.Expires.Format(time.RFC3339))
			}
		}
	}
	var lines atomic.Int64
	done := make(chan struct{})
	if tty {
		go progress(&lines, done)
	}
	res, err := replay.Run(ctx, replay.Options{
		Rules: detect.Compile(rs), Allow: allow, Format: f, Workers: *workers, Lateness: cfg.Lateness,
		OnAlert: onAlert, Lines: &lines,
	}, inputs)
	close(done)
	if err != nil {
		return err
	}
	if tty {
		fmt.Fprint(os.Stderr, "\r\033[K")
		summary(os.Stderr, res)
	}
	return applyErr
}

// orderInputs returns inputs oldest first and, when that is not the order
// given and notify is set, says so on stderr.
func orderInputs(inputs []replay.Input, f accesslog.Format, notify bool) ([]replay.Input, error) {
	ordered, err := replay.OldestFirst(inputs, f)
	if err != nil {
		return nil, err
	}
	var given, now []string
	for i := range inputs {
		given, now = append(given, inputs[i].Name), append(now, ordered[i].Name)
	}
	if notify && !slices.Equal(given, now) {
		fmt.Fprintf(os.Stderr, "replay: reading oldest first: %s\n", strings.Join(now, " "))
	}
	return ordered, nil
}

func openLog(name string) (io.Reader, func(), error) {
	if name == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		return zr, func() { zr.Close(); f.Close() }, nil
	}
	return f, func() { f.Close() }, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func progress(lines *atomic.Int64, done <-chan struct{}) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	start, last, lastAt := time.Now(), int64(0), time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			n := lines.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			fmt.Fprintf(os.Stderr, "\r\033[K%s lines  %s lines/s  %s", human(float64(n)), human(rate), now.Sub(start).Round(time.Second))
			last, lastAt = n, now
		}
	}
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func summary(w io.Writer, res *replay.Result) {
	secs := res.Duration.Seconds()
	fmt.Fprintf(w, "%d lines, %d events, %d skipped in %s (%s lines/s)\n\n",
		res.Lines, res.Events, res.Lines-res.Events, res.Duration.Round(time.Millisecond), human(float64(res.Lines)/secs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tDETECTIONS\tALLOW-LISTED")
	for _, id := range sortedKeys(res.PerRule) {
		s := res.PerRule[id]
		fmt.Fprintf(tw, "%s\t%d\t%d\n", id, s.Detections, s.Allowlisted)
	}
	tw.Flush()
	if len(res.Skipped) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SKIPPED\tLINES")
		for _, r := range sortedKeys(res.Skipped) {
			fmt.Fprintf(tw, "%s\t%d\n", r, res.Skipped[r])
		}
		tw.Flush()
	}
}
