package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/index"
	"github.com/vigil-soc/vigil/ingest"
	"github.com/vigil-soc/vigil/ingest/accesslog"
	"github.com/vigil-soc/vigil/ingest/httpapi"
	"github.com/vigil-soc/vigil/ingest/tail"
	"github.com/vigil-soc/vigil/notify"
	"github.com/vigil-soc/vigil/respond"
	"github.com/vigil-soc/vigil/rules"
)

// Version is the version of the binary, set by the command at start-up.
var Version = "dev"

// App is `vigil run`: every role in one process, or the roles Config.Roles
// names.
type App struct {
	cfg   Config
	log   *slog.Logger
	rules *detect.RuleSet
	allow *detect.Allowlist
	reg   *prometheus.Registry

	roles roleSet
	token []byte // the admin token (API and profiles); empty when none is set

	ready     atomic.Bool
	adminAddr chan string
	nc        atomic.Pointer[nats.Conn]
	redis     *redis.Client // nil when the respond role runs elsewhere
	embedded  atomic.Pointer[bus.Embedded]
	detector  atomic.Pointer[detector]
	api       *api // nil when the admin API is disabled or the respond role runs elsewhere
	indexer   atomic.Pointer[index.Indexer]
	// ingestMetrics are shared by every collector.
	ingestMetrics *ingest.Metrics
	public        atomic.Pointer[httpapi.Server]
	syslog        atomic.Pointer[ingest.SyslogCollector]
	publisher     atomic.Pointer[ingest.Publisher] // of the public listener and syslog
}

// detectedEvents is how many events the detector has read, for tests.
func (a *App) detectedEvents() int64 {
	if d := a.detector.Load(); d != nil {
		return d.events.Load()
	}
	return 0
}

// New validates cfg and loads the rules; it does no other I/O.
func New(cfg Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rs, err := LoadRules(cfg.Rules)
	if err != nil {
		return nil, err
	}
	allow, _ := detect.NewAllowlist(cfg.Allowlist) // validated
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &App{cfg: cfg, log: logger, rules: detect.Compile(rs), allow: allow, reg: reg, roles: cfg.roles(), adminAddr: make(chan string, 1)}, nil
}

// LoadRules loads the rules of dir, or the built-in pack when dir is empty.
func LoadRules(dir string) ([]*detect.Rule, error) {
	if dir == "" {
		return detect.LoadFS(rules.FS, ".", "built-in rules")
	}
	return detect.LoadDir(dir)
}

// Registry returns the metrics registry.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// AdminAddr waits for the admin listener and returns its address.
func (a *App) AdminAddr(ctx context.Context) (string, error) {
	select {
	case addr := <-a.adminAddr:
		a.adminAddr <- addr
		return addr, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Embedded returns the embedded NATS server, nil when an external one is used
// or before Run started it.
func (a *App) Embedded() *bus.Embedded { return a.embedded.Load() }

// Run runs the roles until ctx is done or one of them fails; then it stops
// the others and waits for them. It returns nil after a clean shutdown.
func (a *App) Run(ctx context.Context) error {
	start := time.Now()
	var nc *nats.Conn
	var err error
	if a.cfg.NATS == "" {
		emb, err := bus.StartEmbedded(bus.EmbeddedConfig{StoreDir: filepath.Join(a.cfg.DataDir, "jetstream"), Listen: a.cfg.NATSListen}, a.log)
		if err != nil {
			return err
		}
		a.embedded.Store(emb)
		defer emb.Shutdown()
		if nc, err = emb.Connect("vigil"); err != nil {
			return fmt.Errorf("connecting to embedded NATS: %w", err)
		}
		a.log.Info("embedded NATS started", "store", filepath.Join(a.cfg.DataDir, "jetstream"), "listen", a.cfg.NATSListen)
	} else if nc, err = bus.Dial(a.cfg.NATS, "vigil", a.log); err != nil {
		return err
	}
	a.nc.Store(nc)
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(256),
		// A lost acknowledgement fails the future instead of stalling ingest;
		// the collector re-sends the batch under the same id.
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return err
	}
	if err := a.ensureStreams(ctx, js); err != nil {
		return err
	}

	if a.token, err = a.adminToken(); err != nil {
		return err
	}
	notifier, err := a.notifier()
	if err != nil {
		return err
	}
	defer func() {
		notifier.Flush(2 * time.Second)
		notifier.Close()
	}()
	defer func() {
		if a.redis != nil {
			a.redis.Close()
		}
	}()

	var g group
	g.add("streams", func(ctx context.Context) error {
		return bus.KeepStreams(ctx, js, a.streamsConfig(), 2*time.Second, a.log.With("role", "bus"))
	})
	if a.roles.ingest {
		if err := a.addIngest(&g, js); err != nil {
			return err
		}
	}
	var det *detector
	if a.roles.detect {
		banQuiet := min(detect.DefaultBanQuiet, a.cfg.MaxBan)
		if a.cfg.DryRun {
			banQuiet = 0 // nothing is banned
		}
		engine := detect.NewEngine(a.rules, detect.Options{
			BanQuiet: banQuiet,
			Allow:    a.allow, Lateness: a.cfg.Lateness, MaxKeys: a.cfg.MaxKeys,
			NotBefore: start, Now: time.Now,
		})
		a.reg.MustRegister(detect.NewCollector(engine))
		det = newDetector(js, engine, a.cfg.Lateness, a.reg, a.log.With("role", "detect"))
		det.notify = notifier.Alert
		a.detector.Store(det)
		g.add("detect", det.run)
	}
	if a.roles.respond {
		if err := a.addRespond(&g, js, notifier, det); err != nil {
			return err
		}
	}
	g.add("admin", a.serveAdmin)
	if a.roles.index {
		icfg, err := a.cfg.IndexConfig(true)
		if err != nil {
			return err
		}
		ix, err := index.New(icfg, js, a.reg, a.log.With("role", "index"))
		if err != nil {
			return err
		}
		a.indexer.Store(ix)
		g.add("index", ix.Run)
		a.log.Info("indexing into Elasticsearch", "es", a.cfg.ES, "namespace", a.cfg.ESNamespace)
	}
	var consumers [][2]string
	if a.roles.detect {
		consumers = append(consumers, [2]string{bus.StreamEvents, consumerDetect})
	}
	if a.roles.respond {
		consumers = append(consumers, [2]string{bus.StreamAlerts, consumerRespond})
	}
	a.reg.MustRegister(newConsumerCollector(js, consumers))
	a.ready.Store(true)
	running := []any{"roles", a.roles.names()}
	if a.roles.detect {
		running = append(running, "rules", a.rules.Len())
	}
	if a.roles.respond {
		running = append(running, "redis", Redact(a.cfg.Redis), "dry_run", a.cfg.DryRun)
	}
	a.log.Info("vigil running", running...)
	err = g.run(ctx)
	a.ready.Store(false)
	if err == nil {
		a.log.Info("vigil stopped", "roles", a.roles.names())
	}
	return err
}

// addIngest adds the collectors: access log files, then the public
// listener and syslog.
func (a *App) addIngest(g *group, js jetstream.JetStream) error {
	a.ingestMetrics = ingest.NewMetrics(a.reg)
	if len(a.cfg.AccessLogs) > 0 {
		format, _ := accesslog.ParseFormat(orAuto(a.cfg.AccessLogFormat))
		col, err := ingest.NewFileCollector(ingest.FileConfig{
			Tail: tail.Config{
				Globs:      a.cfg.AccessLogs,
				StateDir:   filepath.Join(a.cfg.DataDir, "tail"),
				StartAtEnd: a.cfg.TailFrom == "end",
			},
			Format:     format,
			Partitions: a.cfg.Partitions,
		}, js, a.ingestMetrics, a.log.With("role", "ingest"))
		if err != nil {
			return err
		}
		a.reg.MustRegister(newTailCollector(col.Tailer()))
		g.add("ingest", col.Run)
		a.log.Info("following access logs", "globs", a.cfg.AccessLogs)
	} else {
		a.log.Info("no access log files configured (--access-log)")
	}
	return a.addCollectors(g, js)
}

// addRespond adds the responder, the gauges of the state it keeps in Redis
// and the admin API, which applies operators' actions through it. det is
// the detector of this process, nil when it runs elsewhere (explain then
// cannot show its windows).
func (a *App) addRespond(g *group, js jetstream.JetStream, notifier *notify.Notifier, det *detector) error {
	ropts, err := redis.ParseURL(a.cfg.Redis)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	ropts.MaxRetries = 1
	// A caller's deadline bounds its command (go-redis' default is the
	// 3 s read timeout whatever the context says): /readyz answers within
	// its 1 s while Redis hangs.
	ropts.ContextTimeoutEnabled = true
	rc := redis.NewClient(ropts)
	a.redis = rc
	store := respond.NewStore(rc, a.cfg.RedisPrefix, time.Now).WithOptions(respond.StoreOptions{DjangoCacheKey: a.cfg.DjangoCacheKey})
	rm := respond.NewMetrics(a.reg)
	ladder, _ := a.cfg.Ladder() // validated
	rcfg := respond.Config{
		DryRun: a.cfg.DryRun, MaxBan: a.cfg.MaxBan, IPv6PrefixLen: a.cfg.IPv6BanPrefix, Ladder: ladder,
		Allow:   a.allow.Contains,
		Breaker: respond.BreakerConfig{PerRule: a.cfg.BreakerPerRule, Overall: a.cfg.BreakerOverall, Window: a.cfg.BreakerWindow},
		OnTrip: func(scope string, count int) {
			a.log.Error("circuit breaker open: automatic bans stopped; reset with `vigil breaker reset`", "scope", scope, "bans", count, "window", a.cfg.BreakerWindow)
			notifier.BreakerTripped(scope, count, a.cfg.BreakerWindow)
		},
	}
	if err := rcfg.Validate(); err != nil {
		return err
	}
	resp := respond.NewResponder(store, rcfg, a.log.With("role", "respond"), rm)
	rsp := &responder{js: js, r: resp, log: a.log.With("role", "respond")}
	g.add("respond", rsp.run)

	token := a.token
	if len(token) == 0 && !a.cfg.InsecureAdmin {
		a.log.Warn("admin API disabled: set admin_token_file (or VIGIL_ADMIN_TOKEN); --insecure-admin serves it without a token on a loopback address")
	} else {
		p := &api{token: token, store: store, resp: resp, js: js, allow: a.allow, audit: rsp.audit, maxBody: 64 << 10, unsecure: a.cfg.InsecureAdmin && len(token) == 0}
		if det != nil {
			p.explain = det.lock.explain
		}
		a.api = p
	}

	lockdown := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_respond_lockdown_active", Help: "Emergency lockdown state: 0 off, 1 read-only, 2 full.",
	})
	a.reg.MustRegister(lockdown)
	refreshed := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_respond_state_refreshed_timestamp_seconds",
		Help: "When vigil_respond_bans_active and vigil_respond_lockdown_active were last read from Redis (every 5 s): older means Redis did not answer and they show the last values read.",
	})
	a.reg.MustRegister(refreshed)
	g.add("state-gauges", func(ctx context.Context) error { return refreshState(ctx, resp, store, lockdown, refreshed, a.log) })
	return nil
}

// streamsConfig sizes the streams from the configuration.
func (a *App) streamsConfig() bus.StreamsConfig {
	return bus.StreamsConfig{EventsMaxAge: a.cfg.EventsMaxAge, EventsMaxBytes: a.cfg.EventsMaxBytes, Replicas: a.cfg.StreamReplicas}
}

// ensureStreams creates the streams, retrying while NATS is unreachable.
func (a *App) ensureStreams(ctx context.Context, js jetstream.JetStream) error {
	cfg := a.streamsConfig()
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := bus.EnsureStreams(sctx, js, cfg)
		cancel()
		if err == nil {
			return nil
		}
		a.log.Warn("setting up JetStream streams, will retry", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// refreshState keeps vigil_respond_bans_active and
// vigil_respond_lockdown_active current.
func refreshState(ctx context.Context, r *respond.Responder, store *respond.Store, lockdown, refreshed prometheus.Gauge, log *slog.Logger) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		err := r.RefreshActive(ctx)
		if err != nil && ctx.Err() == nil {
			log.Debug("counting active bans", "err", err)
		}
		if l, lerr := store.Lockdown(ctx); lerr == nil {
			switch {
			case l == nil:
				lockdown.Set(0)
			case l.Mode == "full":
				lockdown.Set(2)
			default:
				lockdown.Set(1)
			}
			if err == nil {
				refreshed.SetToCurrentTime()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// serveAdmin serves /metrics, /healthz and /readyz until ctx is done.
func (a *App) serveAdmin(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Admin)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	a.adminAddr <- ln.Addr().String()
	srv := &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	a.log.Info("admin listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// group runs roles; the first to return an error (or return at all while
// the context is live) stops the rest.
type group struct {
	names []string
	fns   []func(context.Context) error
}

func (g *group) add(name string, fn func(context.Context) error) {
	g.names = append(g.names, name)
	g.fns = append(g.fns, fn)
}

func (g *group) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i, fn := range g.fns {
		wg.Go(func() {
			err := fn(ctx)
			if err == nil && ctx.Err() == nil {
				err = fmt.Errorf("%s stopped unexpectedly", g.names[i])
			}
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", g.names[i], err)
				}
				mu.Unlock()
			}
			cancel()
		})
	}
	wg.Wait()
	return first
}

// PublicAddr waits for the public listener and returns the address it
// serves scheme ("http" or "https") on.
func (a *App) PublicAddr(ctx context.Context, scheme string) (string, error) {
	for {
		if srv := a.public.Load(); srv != nil {
			select {
			case <-srv.Ready():
				if addr := srv.Addr(scheme); addr != nil {
					return addr.String(), nil
				}
				return "", fmt.Errorf("the public listener does not serve %s", scheme)
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// adminToken reads the admin API token from the settings.
func (a *App) adminToken() ([]byte, error) {
	if a.cfg.AdminTokenFile != "" {
		t, err := readSecret(a.cfg.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin_token_file: %w", err)
		}
		return t, nil
	}
	if t := a.cfg.AdminToken; t != "" {
		if len(t) < 16 {
			return nil, errors.New("admin_token: must be at least 16 characters")
		}
		return []byte(t), nil
	}
	return nil, nil
}

// notifier returns the Sentry notifier (a no-op without a DSN).
func (a *App) notifier() (*notify.Notifier, error) {
	host, _ := os.Hostname()
	return notify.New(notify.Config{
		DSN: a.cfg.SentryDSN, MinSeverity: a.cfg.SentryMinSeverity, Environment: a.cfg.SentryEnvironment, Release: "vigil@" + Version,
		ServerName: host, Logger: a.log.With("role", "sentry"),
	})
}
