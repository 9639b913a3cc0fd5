package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/vigil-soc/vigil/app"
)

var (
	errUsage  = errors.New("usage")
	errFailed = errors.New("failed")
)

// configFlags registers a flag per setting on fs, plus --config. After
// fs.Parse, load() returns the config: defaults, then the file, then VIGIL_*
// environment variables, then the flags given.
func configFlags(fs *flag.FlagSet) (load func() (app.Config, error)) {
	file := fs.String("config", os.Getenv("VIGIL_CONFIG"), "YAML config file (env VIGIL_CONFIG)")
	set := map[string][]string{}
	var order []string
	def := app.Default()
	defaults := map[string]string{}
	for _, line := range strings.Split(def.Redacted(), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			defaults[k] = v
		}
	}
	for _, f := range app.Fields() {
		help := app.Help[f.Key] + " (env " + f.Env + ")"
		if d := defaults[f.Key]; d != "" && d != `""` && d != "[]" && d != "false" && d != "0" {
			help += " (default " + d + ")"
		}
		if f.Key == "allowlist" {
			help += " (default loopback, RFC 1918, link-local, fc00::/7)"
		}
		add := func(v string) error {
			if _, ok := set[f.Key]; !ok {
				order = append(order, f.Key)
			}
			set[f.Key] = append(set[f.Key], v)
			return nil
		}
		if app.IsBool(f.Key) {
			fs.BoolFunc(f.Flag, help, add)
		} else {
			fs.Func(f.Flag, help, add)
		}
	}
	return func() (app.Config, error) {
		cfg := app.Default()
		if *file != "" {
			if err := cfg.LoadFile(*file); err != nil {
				return cfg, err
			}
		}
		if err := cfg.LoadEnv(os.LookupEnv); err != nil {
			return cfg, err
		}
		for _, key := range order {
			if app.IsList(key) {
				cfg.Reset(key) // a list given as flags replaces the file's and the default
			}
			for _, v := range set[key] {
				if err := cfg.Set(key, v); err != nil {
					return cfg, fmt.Errorf("--%s: %w", strings.ReplaceAll(key, "_", "-"), err)
				}
			}
		}
		return cfg, cfg.Validate()
	}
}

func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, turning --help into a clean exit.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	return nil
}

var errHelp = errors.New("help")

func newLogger(cfg app.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdConfig(args []string) error {
	fs := newFlagSet("config", "vigil config [--config FILE] [flags]\n\nPrints the effective configuration as YAML (defaults < file < VIGIL_* env < flags), secrets as <secret>.")
	load := configFlags(fs)
	if err := parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	fmt.Print(cfg.Redacted())
	return nil
}

// noArgs refuses positional arguments after the flags of a command that
// takes none: mostly a switch given its value apart (--dry-run false),
// which would otherwise end the flags and drop the rest silently.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() == 0 {
		return nil
	}
	a := fs.Arg(0)
	if a == "true" || a == "false" {
		return fmt.Errorf("unexpected argument %q: give a switch its value with '=' (--dry-run=%s) or none (--dry-run)", a, a)
	}
	return fmt.Errorf("unexpected argument %q (see --help)", a)
}

func ignoreHelp(err error) error {
	if err == errHelp {
		return nil
	}
	return err
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
