package app

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/ingest"
	"github.com/vigil-soc/vigil/ingest/csp"
	"github.com/vigil-soc/vigil/ingest/httpapi"
	"github.com/vigil-soc/vigil/ingest/syslog"
)

// addCollectors adds the request-driven collectors (the public listener,
// syslog) and the publisher they share, as one role: on shutdown the
// collectors stop first (the listener finishing the requests under way),
// and the publisher then stores what they queued before it stops.
func (a *App) addCollectors(g *group, js jetstream.JetStream) error {
	if a.cfg.Listen == "" && a.cfg.ListenTLS == "" && a.cfg.SyslogUDP == "" && a.cfg.SyslogTCP == "" {
		return nil
	}
	pub := ingest.NewPublisher(js, a.cfg.Partitions, a.ingestMetrics, a.log.With("role", "publish"))
	a.publisher.Store(pub)
	var collectors group
	g.add("collectors", func(ctx context.Context) error {
		pctx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
		defer stopPub()
		cctx, stopCollectors := context.WithCancel(ctx)
		defer stopCollectors()
		pubDone := make(chan error, 1)
		go func() {
			pubDone <- pub.Run(pctx)
			stopCollectors() // nothing stores their events any more
		}()
		err := collectors.run(cctx)
		stopPub() // store what is queued, then stop
		if perr := <-pubDone; err == nil {
			err = perr
		}
		return err
	})
	if a.cfg.Listen != "" || a.cfg.ListenTLS != "" {
		cfg, err := a.publicConfig()
		if err != nil {
			return err
		}
		srv, err := httpapi.New(cfg, pub, httpapi.NewMetrics(a.reg, a.ingestMetrics))
		if err != nil {
			return err
		}
		a.public.Store(srv)
		collectors.add("public", srv.Run)

		if len(cfg.EventsTokens) == 0 && len(cfg.EventsHMACSecret) == 0 {
			a.log.Warn("/events refuses everything: set events_token_file (or VIGIL_EVENTS_TOKEN) or events_hmac_secret_file")
		}
	}
	if a.cfg.SyslogUDP != "" || a.cfg.SyslogTCP != "" {
		allow, err := parsePrefixes(a.cfg.SyslogAllow)
		if err != nil {
			return fmt.Errorf("syslog_allow: %w", err)
		}
		if len(allow) == 0 {
			allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		}
		col, err := ingest.NewSyslogCollector(syslog.Config{UDP: a.cfg.SyslogUDP, TCP: a.cfg.SyslogTCP, Allow: allow}, pub, a.ingestMetrics, a.log.With("role", "syslog"))
		if err != nil {
			return err
		}
		a.syslog.Store(col)
		a.reg.MustRegister(newSyslogCollector(col.Server()))
		collectors.add("syslog", col.Run)
		a.log.Info("syslog receiver", "udp", a.cfg.SyslogUDP, "tcp", a.cfg.SyslogTCP, "allow", allow)
	}
	return nil
}

// publicConfig turns the settings into the listener's configuration, reading
// the secret files.
func (a *App) publicConfig() (httpapi.Config, error) {
	proxies, _ := a.cfg.TrustedProxyPrefixes() // validated
	filter := csp.DefaultFilter()
	filter.Documents = a.cfg.CSPDocuments
	filter.DropHosts = a.cfg.CSPDropHosts
	filter.KeepAboutBlank = a.cfg.CSPKeepAboutDocuments
	if len(a.cfg.CSPDropSchemes) > 0 {
		filter.DropSchemes = a.cfg.CSPDropSchemes
	}
	if err := filter.Validate(); err != nil {
		return httpapi.Config{}, fmt.Errorf("csp_documents/csp_drop_hosts/csp_drop_schemes: %w", err)
	}
	cfg := httpapi.Config{
		Listen: a.cfg.Listen, ListenTLS: a.cfg.ListenTLS, TLSCert: a.cfg.TLSCert, TLSKey: a.cfg.TLSKey,
		BodyLimit: a.cfg.BodyLimit, RatePerSecond: float64(a.cfg.RateLimit), Burst: burstOf(a.cfg.RateLimit),
		TrustedProxies: proxies, CORSOrigins: a.cfg.CORSOrigins, CSPFilter: filter,
		MaxConns: a.cfg.MaxConns, MaxConnsPerClient: a.cfg.MaxConnsPerClient,
		Logger: a.log.With("role", "public"),
	}
	if cfg.MaxConnsPerClient == 0 {
		cfg.MaxConnsPerClient = -1 // no cap
	}
	token := a.cfg.EventsToken
	if a.cfg.EventsTokenFile != "" {
		t, err := readSecret(a.cfg.EventsTokenFile)
		if err != nil {
			return cfg, fmt.Errorf("events_token_file: %w", err)
		}
		token = string(t)
	}
	if token != "" {
		cfg.EventsTokens = [][]byte{[]byte(token)}
	}
	if a.cfg.EventsHMACSecretFile != "" {
		s, err := readSecret(a.cfg.EventsHMACSecretFile)
		if err != nil {
			return cfg, fmt.Errorf("events_hmac_secret_file: %w", err)
		}
		cfg.EventsHMACSecret = s
	}
	return cfg, nil
}

// readSecret reads the first line of a file; an empty secret is an error.
func readSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSpace(line)
	if len(line) < 16 {
		return nil, fmt.Errorf("%s: the secret must be at least 16 characters", path)
	}
	return line, nil
}

// burstOf is the rate limit's burst: ten seconds' worth. A page with many
// blocked resources makes the browser post a report for each at once
// (Firefox sent 80 in under a second for a page of 80 blocked images),
// and a report refused is never sent again.
func burstOf(rate int) int { return 10 * rate }
