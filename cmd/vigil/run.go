package main

import (
	"context"
	"os"

	"github.com/vigil-soc/vigil/app"
)

func cmdRun(ctx context.Context, args []string) error {
	fs := newFlagSet("run", `vigil run [--config FILE] [flags]

Runs every role in one process: an embedded NATS JetStream server (unless
--nats is given), the collectors (access log files --access-log, syslog
--syslog-udp/--syslog-tcp, and the public listener --listen for CSP reports
and application events), the streaming detector, the responder writing bans,
revocations and lockdowns to Redis, and the admin listener (/metrics,
/healthz, /readyz and, with --admin-token-file, the admin API the operator
commands use).

--roles runs only some of them, so each can be deployed on its own against
one NATS (--nats, or --nats-listen on the process serving the embedded one):
ingest (collectors; any number), detect (one active process; others wait as
standbys and one takes over at once when the active one stops, within
30 s when it dies), respond (bans and the admin API) and index
(Elasticsearch, with --es). Every process keeps its admin listener.

Each flag can also be set in the YAML config file (key = flag
name with '_') or as a VIGIL_* environment variable; later sources win:
defaults < --config file < environment < flags.`)
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
	a, err := app.New(cfg, newLogger(cfg, os.Stderr))
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
