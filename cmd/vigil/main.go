// Command vigil is the Vigil security event pipeline: collectors, a streaming
// detector and a responder in one binary. See `vigil help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-soc/vigil/app"
)

const usage = `vigil — security event pipeline: access logs → JetStream → sliding-window rules → Redis bans

Usage:
  vigil run [flags]                 run every role: embedded NATS, log collectors, detector, responder, admin
  vigil replay [flags] FILE...      run the rules over log files as fast as possible and print detections
  vigil rules lint [DIR]            validate rule files (default: the built-in pack)
  vigil rules test [DIR]            run the rules' fixtures (NAME.test.yaml beside NAME.yaml)
  vigil rules list [DIR]            list the rules
  vigil rules dump DIR              write the built-in pack to DIR, to edit and use with --rules DIR
  vigil config [flags]              print the effective configuration (secrets hidden)
  vigil es setup|rollover           Elasticsearch templates and aliases (--es URL)

Operating a running vigil (admin API; --server, token from VIGIL_ADMIN_TOKEN or --token-file):
  vigil bans [--json]               list active bans
  vigil ban IP --for 24h --reason R ban an IP or IPv6 network now
  vigil unban IP                    remove a ban
  vigil lockdown on|off|status      emergency lockdown [--mode full|read-only] [--for 30m] --reason R
  vigil revoke --jti J | --user U | --all   refuse tokens
  vigil alerts [--follow]           recent alerts
  vigil audit [--limit N]           the audit trail: every action, automatic or manual, and its result
  vigil explain IP                  why an IP is (not) banned: rule windows, ban, history
  vigil breaker status|reset        the circuit breakers of automatic bans
  vigil version

Run 'vigil COMMAND --help' for a command's flags.
`

var version = "dev"

func main() {
	app.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

// run dispatches a command line and returns the exit code.
func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:])
	case "replay":
		err = cmdReplay(ctx, args[1:])
	case "rules":
		err = cmdRules(ctx, args[1:])
	case "config":
		err = cmdConfig(args[1:])
	case "bans":
		err = cmdBans(ctx, args[1:])
	case "ban":
		err = cmdBan(ctx, args[1:])
	case "unban":
		err = cmdUnban(ctx, args[1:])
	case "lockdown":
		err = cmdLockdown(ctx, args[1:])
	case "revoke":
		err = cmdRevoke(ctx, args[1:])
	case "alerts":
		err = cmdAlerts(ctx, args[1:])
	case "audit":
		err = cmdAudit(ctx, args[1:])
	case "explain":
		err = cmdExplain(ctx, args[1:])
	case "breaker":
		err = cmdBreaker(ctx, args[1:])
	case "es":
		err = cmdES(ctx, args[1:])
	case "version", "--version":
		fmt.Println("vigil", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		if err == errFailed {
			return 1
		}
		fmt.Fprintln(os.Stderr, "vigil:", err)
		return 1
	}
	return 0
}
