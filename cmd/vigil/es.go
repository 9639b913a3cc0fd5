package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/vigil-soc/vigil/index"
)

const esUsage = `Usage:
  vigil es setup [--es URL] [--config FILE]      install or upgrade the index templates and create the
                                                  write aliases / data streams (vigil run does it too)
  vigil es rollover [--es URL] [--config FILE]   roll the write indices over when due (index mode
                                                  without ILM)
`

func cmdES(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "setup" && args[0] != "rollover") {
		fmt.Fprint(os.Stderr, esUsage)
		return errUsage
	}
	sub := args[0]
	fs := newFlagSet("es "+sub, "vigil es "+sub+" [flags]")
	load := configFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return ignoreHelp(err)
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if len(cfg.ES) == 0 {
		return errors.New("no Elasticsearch: give --es URL (or es: in the config, VIGIL_ES)")
	}
	icfg, err := cfg.IndexConfig(true)
	if err != nil {
		return err
	}
	cluster, err := index.NewCluster(icfg, newLogger(cfg, os.Stderr))
	if err != nil {
		return err
	}
	switch sub {
	case "setup":
		if err := cluster.Setup(ctx); err != nil {
			return err
		}
		fmt.Printf("ok: templates %v installed (version %d), mode %s, namespace %s\n", index.TemplateNames(), index.TemplateVersion, cluster.Mode(), cluster.Namespace())
	case "rollover":
		res, err := cluster.Rollover(ctx)
		if err != nil {
			return err
		}
		for _, r := range res {
			fmt.Printf("%+v\n", r)
		}
	}
	return nil
}
