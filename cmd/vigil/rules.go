package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/replay"
	"github.com/vigil-soc/vigil/rules"
)

const rulesUsage = `Usage:
  vigil rules lint [DIR]   validate rule files; errors name file:line, rule and field
  vigil rules test [DIR]   run each rules file's fixtures (NAME.test.yaml) through the whole pack
  vigil rules list [DIR]   list the rules
  vigil rules dump DIR     write the built-in pack (rules, fixtures, logs) to DIR

DIR defaults to the built-in pack.
`

func cmdRules(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, rulesUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	if len(rest) > 1 {
		fmt.Fprint(os.Stderr, rulesUsage)
		return errUsage
	}
	dir := ""
	if len(rest) == 1 {
		dir = rest[0]
	}
	switch sub {
	case "lint":
		rs, err := app.LoadRules(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return errFailed
		}
		fmt.Printf("ok: %d rules in %s\n", len(rs), orBuiltin(dir))
	case "list":
		rs, err := app.LoadRules(dir)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSOURCE\tKEY\tTHRESHOLD\tWINDOW\tSEVERITY\tBAN\tDESCRIPTION")
		for _, r := range rs {
			what := fmt.Sprint(r.Threshold)
			if r.Distinct != "" {
				what += " distinct " + r.Distinct
			}
			ban := "-"
			if r.Actions.Ban > 0 {
				ban = r.Actions.Ban.D().String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Source, r.GroupBy, what, r.Window.D(), r.Severity, ban, r.Description)
		}
		return tw.Flush()
	case "test":
		rs, err := app.LoadRules(dir)
		if err != nil {
			return err
		}
		fsys, root, display := fs.FS(rules.FS), ".", "built-in rules"
		if dir != "" {
			fsys, display = os.DirFS(dir), dir
		}
		allow, _ := detect.NewAllowlist(detect.DefaultAllowlist)
		results, err := replay.RunFixtures(ctx, fsys, root, display, detect.Compile(rs), allow)
		if err != nil {
			return err
		}
		failed := 0
		for _, r := range results {
			if len(r.Failures) == 0 {
				fmt.Printf("PASS  %s: %s\n", r.File, r.Name)
				continue
			}
			failed++
			fmt.Printf("FAIL  %s: %s\n", r.File, r.Name)
			for _, f := range r.Failures {
				fmt.Printf("        %s\n", f)
			}
		}
		fmt.Printf("%d passed, %d failed\n", len(results)-failed, failed)
		if len(results) == 0 {
			fmt.Fprintf(os.Stderr, "no fixtures (*.test.yaml) in %s\n", display)
			return errFailed
		}
		if failed > 0 {
			return errFailed
		}
	case "dump":
		if dir == "" {
			fmt.Fprint(os.Stderr, rulesUsage)
			return errUsage
		}
		return dumpRules(dir)
	default:
		fmt.Fprintf(os.Stderr, "vigil rules: unknown subcommand %q\n\n%s", sub, rulesUsage)
		return errUsage
	}
	return nil
}

func orBuiltin(dir string) string {
	if dir == "" {
		return "the built-in pack"
	}
	return dir
}

// dumpRules copies the built-in pack to dir, refusing to overwrite files.
func dumpRules(dir string) error {
	return fs.WalkDir(rules.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if filepath.Ext(p) == ".go" {
			return nil
		}
		data, err := fs.ReadFile(rules.FS, p)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("writing %s: %w (remove it first)", dst, err)
		}
		defer f.Close()
		_, err = f.Write(data)
		return err
	})
}
