// Command vigil-loggen writes a synthetic nginx access log and the
// detections a correct Vigil detector must report on it.
//
//	vigil-loggen -lines 1000000 -seed 1 -o access.log -truth truth.jsonl
//	vigil-loggen -follow -rate 200 -duration 10m -o /var/log/nginx/access.log
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigil-soc/vigil/bench/loggen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-loggen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil-loggen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      loggen.Config
		start    string
		out      = fs.String("o", "-", "write the log to `file` (\"-\": standard output); -follow appends to it")
		truth    = fs.String("truth", "", "write the expected detections to `file` as JSON lines, sorted by rule then key")
		actors   = fs.String("actors", "", "write the planted actors (scanners, decoys, ...) to `file` as JSON lines")
		follow   = fs.Bool("follow", false, "write in real time: -rate lines per second of wall time, timestamped now, until -lines or -duration")
		duration = fs.Duration("duration", 0, "with -follow, stop after this long (default: when -lines are written)")
	)
	fs.IntVar(&cfg.Lines, "lines", 1000000, "number of lines to write, junk included")
	fs.Int64Var(&cfg.Seed, "seed", 1, "random seed: the same seed and flags give the same log")
	fs.StringVar(&cfg.Format, "format", loggen.FormatCombined, "log format: combined, main (combined plus X-Forwarded-For) or json (escape=json)")
	fs.StringVar(&start, "start", "", "event time of the first line, RFC 3339 (default "+loggen.DefaultStart.Format(time.RFC3339)+"; with -follow, now)")
	fs.Float64Var(&cfg.Rate, "rate", loggen.DefaultRate, "mean lines per second of event time; the log spans lines/rate seconds")
	fs.IntVar(&cfg.Scanners, "scanners", 0, "directory scanners, meant to fire http-404-scan (0: 40 per 1M lines, scaled by sqrt; -1: none)")
	fs.IntVar(&cfg.SlowScanners, "slow-scanners", 0, "scanners kept under the 404 threshold, meant not to fire (0: 10 per 1M lines, scaled; -1: none)")
	fs.IntVar(&cfg.BruteForcers, "bruteforcers", 0, "login brute forcers, meant to fire auth-bruteforce (0: 20 per 1M lines, scaled; -1: none)")
	fs.IntVar(&cfg.Attackers, "attackers", 0, "clients sending traversal, SQL or script injection payloads (0: 30 per 1M lines, scaled; -1: none)")
	fs.IntVar(&cfg.Decoys, "decoys", 0, "suspicious-looking clients meant not to fire (0: 40 per 1M lines, scaled; -1: none)")
	fs.IntVar(&cfg.Allowlisted, "allowlisted", 0, "scanners in 10/8 or 192.168/16, which fire but are allow-listed (0: 3 per 1M lines, scaled; -1: none)")
	fs.Float64Var(&cfg.IPv6Share, "ipv6", loggen.DefaultIPv6Share, "share of clients with IPv6 addresses (negative: none)")
	fs.Float64Var(&cfg.Junk, "junk", loggen.DefaultJunk, "share of junk lines: TLS handshakes, empty and truncated requests (negative: none)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: vigil-loggen [flags]\n\n"+
			"Writes a synthetic nginx access log of a Django and React shop, with planted\n"+
			"scanners, brute forcers, payload attackers and decoys, and the detections an\n"+
			"exact detector reports on it.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if start != "" {
		t, err := time.Parse(time.RFC3339, start)
		if err != nil {
			return fmt.Errorf("parsing -start: %w", err)
		}
		cfg.Start = t
	}
	if *follow && *duration > 0 {
		byDuration := int(duration.Seconds() * cfg.Rate)
		linesSet := false
		fs.Visit(func(f *flag.Flag) { linesSet = linesSet || f.Name == "lines" })
		if !linesSet || byDuration < cfg.Lines {
			cfg.Lines = byDuration
		}
	}

	var w io.Writer = stdout
	var file *os.File
	if *out != "-" {
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if *follow {
			flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
		}
		f, err := os.OpenFile(*out, flags, 0o644)
		if err != nil {
			return fmt.Errorf("opening log: %w", err)
		}
		file, w = f, f
	}

	began := time.Now()
	var st loggen.Stats
	var err error
	if *follow {
		st, err = loggen.Follow(ctx, w, cfg)
	} else {
		st, err = loggen.Generate(w, cfg)
	}
	if file != nil {
		if cerr := file.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing log: %w", cerr)
		}
	}
	if err != nil {
		return err
	}
	if *truth != "" {
		if err := writeFile(*truth, func(w io.Writer) error { return loggen.WriteTruth(w, st.Truth) }); err != nil {
			return err
		}
	}
	if *actors != "" {
		if err := writeFile(*actors, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			for _, a := range st.Actors {
				if err := enc.Encode(a); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}

	perRule := map[string]int{}
	for _, t := range st.Truth {
		perRule[t.Rule]++
	}
	elapsed := time.Since(began)
	slog.New(slog.NewTextHandler(stderr, nil)).Info("generated",
		"lines", st.Lines, "junk", st.Junk, "actors", len(st.Actors), "detections", len(st.Truth),
		"by_rule", perRule, "elapsed", elapsed.Round(time.Millisecond),
		"lines_per_second", int(float64(st.Lines)/elapsed.Seconds()))
	return nil
}

// writeFile creates path and writes it with write.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	return nil
}
