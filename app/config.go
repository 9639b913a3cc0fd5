// Package app wires Vigil's stages into the roles of `vigil run` (bus,
// collectors, detector, responder, admin server) as one run group that tests
// can start in-process, and holds the configuration they share.
package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-soc/vigil/index"

	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/ingest/accesslog"
)

// Config is everything `vigil run` needs. It is read from defaults, then a
// YAML file (--config), then VIGIL_* environment variables, then flags;
// each later source overrides the earlier. The yaml key of each field is
// also its flag name (with '-' for '_') and, upper-cased with a VIGIL_
// prefix, its environment variable.
type Config struct {
	// Redis is the Redis URL bans are written to (redis://[:password@]host:port/db,
	// rediss:// for TLS). Default redis://127.0.0.1:6379/0.
	Redis string `yaml:"redis"`
	// RedisPrefix prefixes every Redis key Vigil writes. Default "vigil:".
	RedisPrefix string `yaml:"redis_prefix"`
	// NATS is the URL of an external NATS server or cluster with JetStream.
	// Empty (the default): start an embedded server storing under DataDir.
	NATS string `yaml:"nats"`
	// Roles are the roles this process runs, any of ingest (access log
	// files, syslog, the public listener), detect (the rule engine),
	// respond (bans, revocations and lockdowns in Redis; the admin API) and
	// index (Elasticsearch). Empty (the default): all of them, index only
	// when ES is set. Processes that split the roles share one NATS: NATS,
	// or NATSListen on the process with the embedded server.
	Roles []string `yaml:"roles"`
	// NATSListen makes the embedded server also accept TCP clients on this
	// address (e.g. 127.0.0.1:4222, for the nats CLI). Default: in-process only.
	NATSListen string `yaml:"nats_listen"`
	// DataDir holds the embedded JetStream store and the tail checkpoints.
	// Default ./vigil-data.
	DataDir string `yaml:"data_dir"`
	// AccessLogs are access log paths or globs to follow; globs are
	// re-expanded so files that appear later are picked up.
	AccessLogs []string `yaml:"access_log"`
	// AccessLogFormat forces a format (nginx-combined, nginx-main,
	// apache-combined, nginx-json); default auto (detected per file).
	AccessLogFormat string `yaml:"access_log_format"`
	// TailFrom is where to start a log seen for the first time with no
	// checkpoint: "beginning" (default) or "end".
	TailFrom string `yaml:"tail_from"`
	// Rules is a directory of rule files replacing the built-in pack.
	// Default: the built-in pack (see `vigil rules dump`).
	Rules string `yaml:"rules"`
	// Allowlist are networks (CIDRs) never banned. Default: loopback,
	// RFC 1918, link-local and IPv6 unique-local.
	Allowlist []string `yaml:"allowlist"`
	// Admin is the admin listener: /metrics, /healthz, /readyz.
	// Default 127.0.0.1:9464.
	Admin string `yaml:"admin"`
	// Partitions is the number of event subjects per source
	// (vigil.events.<source>.<0..N-1>), by a hash of source.ip. Default 8.
	Partitions int `yaml:"partitions"`
	// Lateness is how far out of order an event may arrive per key and
	// still count. Default 5s.
	Lateness time.Duration `yaml:"lateness"`
	// MaxKeys caps the detector's windows; the least recently seen are
	// evicted past it. Default 1000000.
	MaxKeys int `yaml:"max_keys"`
	// DryRun logs and audits actions without applying them.
	DryRun bool `yaml:"dry_run"`
	// MaxBan caps any ban's duration. Default 30 days.
	MaxBan time.Duration `yaml:"max_ban"`
	// EventsMaxAge is how long VIGIL_EVENTS keeps events. Default 24h.
	EventsMaxAge time.Duration `yaml:"events_max_age"`
	// EventsMaxBytes caps VIGIL_EVENTS (oldest dropped). Default 4 GiB.
	EventsMaxBytes int64 `yaml:"events_max_bytes"`
	// StreamReplicas is how many copies a clustered NATS keeps of each
	// stream (1, 3 or 5; at most the cluster's size). Default 1.
	StreamReplicas int `yaml:"stream_replicas"`
	// AdminToken is the bearer token of the admin API (/api/v1 on the admin
	// listener). Prefer AdminTokenFile; env VIGIL_ADMIN_TOKEN.
	AdminToken string `yaml:"admin_token"`
	// AdminTokenFile reads AdminToken from a file (first line).
	AdminTokenFile string `yaml:"admin_token_file"`
	// InsecureAdmin serves the admin API without a token; allowed only when
	// the admin listener is on a loopback address.
	InsecureAdmin bool `yaml:"insecure_admin"`
	// Pprof serves Go's runtime profiles (/debug/pprof/) on the admin
	// listener, behind the admin token when one is set; without a token
	// only on a loopback admin address.
	Pprof bool `yaml:"pprof"`
	// IPv6BanPrefix widens IPv6 bans to the network of this length (one
	// client often holds a whole /64). Default 128 (the address alone).
	IPv6BanPrefix int `yaml:"ipv6_ban_prefix"`
	// BanLadder escalates repeat offenders: an IP's n-th ban lasts at least
	// the n-th duration (the last one repeats), e.g. [72h, 720h]. Default
	// none (every ban lasts what its rule says).
	BanLadder []string `yaml:"ban_ladder"`
	// BreakerPerRule and BreakerOverall stop automatic bans and token
	// revocations when one rule, or all together, make more than this
	// within BreakerWindow (a broken rule must not ban the internet).
	// Defaults 50, 200, 10m.
	BreakerPerRule int           `yaml:"breaker_per_rule"`
	BreakerOverall int           `yaml:"breaker_overall"`
	BreakerWindow  time.Duration `yaml:"breaker_window"`
	// DjangoCacheKey is the Django cache key mirrored while a lockdown is on
	// (KEY_PREFIX:VERSION:EMERGENCY_LOCKDOWN). Default ":1:EMERGENCY_LOCKDOWN".
	DjangoCacheKey string `yaml:"django_cache_key"`
	// SentryDSN sends detections of at least SentryMinSeverity, and every
	// circuit breaker trip, to Sentry. Empty (default): Sentry off.
	SentryDSN string `yaml:"sentry_dsn"`
	// SentryMinSeverity is low, medium, high (default) or critical.
	SentryMinSeverity string `yaml:"sentry_min_severity"`
	// SentryEnvironment tags Sentry events (e.g. production).
	SentryEnvironment string `yaml:"sentry_environment"`

	// ES is the Elasticsearch URL events, alerts and audit entries are
	// indexed into (repeatable for several nodes). Empty (default):
	// indexing off.
	ES []string `yaml:"es"`
	// ESNamespace is the data stream / index namespace:
	// logs-vigil.<kind>-<namespace>. Default "default".
	ESNamespace string `yaml:"es_namespace"`
	// ESMode is auto (data streams when the cluster has them, default),
	// datastream or index (time-based indices behind a write alias).
	ESMode string `yaml:"es_mode"`
	// ESAPIKeyFile holds an Elasticsearch API key (base64 id:key).
	ESAPIKeyFile string `yaml:"es_api_key_file"`
	// ESUsername and ESPasswordFile are basic-auth credentials.
	ESUsername     string `yaml:"es_username"`
	ESPasswordFile string `yaml:"es_password_file"`
	// ESCACert is a PEM CA certificate for an https:// cluster.
	ESCACert string `yaml:"es_ca_cert"`

	// Listen is the public listener (CSP reports, application events), plain
	// HTTP. Default 127.0.0.1:8080; "" = off.
	Listen string `yaml:"listen"`
	// ListenTLS is the public listener over HTTPS with HTTP/2 (browsers
	// deliver Reporting API reports only to HTTPS); needs TLSCert and TLSKey.
	ListenTLS string `yaml:"listen_tls"`
	// TLSCert and TLSKey are PEM files for ListenTLS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TrustedProxies are networks (CIDRs) whose X-Forwarded-For is believed
	// for the client IP of reports and events. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// EventsToken is the bearer token the application sends to /events.
	EventsToken string `yaml:"events_token"`
	// EventsTokenFile reads EventsToken from a file (first line).
	EventsTokenFile string `yaml:"events_token_file"`
	// EventsHMACSecretFile holds a secret for HMAC-signed /events requests.
	EventsHMACSecretFile string `yaml:"events_hmac_secret_file"`
	// BodyLimit caps a report or event request body (e.g. 64KiB). Default 64 KiB.
	BodyLimit int64 `yaml:"body_limit"`
	// RateLimit is requests per second per client IP on the public listener,
	// with bursts of 3x. Default 20.
	RateLimit int `yaml:"rate_limit"`
	// MaxConns caps the public listener's open connections (HTTP and HTTPS
	// together); at the cap a new connection closes the one waiting longest
	// without a request in progress. 0 = half the file descriptor limit, at
	// most 16,384.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerClient caps one client address's connections (trusted
	// proxies exempt); 0 = no cap. Default 128.
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	// CORSOrigins may post reports cross-origin. Default any.
	CORSOrigins []string `yaml:"cors_origins"`
	// CSPDocuments are the origins (scheme://host[:port], "*." wildcards)
	// whose pages may report; reports for other documents are dropped as
	// noise. Default any.
	CSPDocuments []string `yaml:"csp_documents"`
	// CSPDropSchemes are the URI schemes (of the blocked URI, source file or
	// document) whose reports are browser-extension or browser-internal
	// noise. Default chrome-extension, moz-extension, safari-extension,
	// safari-web-extension, ms-browser-extension, chrome, about, chromenull,
	// chromeinvokeimmediate, webkit-masked-url, resource.
	CSPDropSchemes []string `yaml:"csp_drop_schemes"`
	// CSPDropHosts are hosts (with "*." wildcards) of injected widgets whose
	// reports are noise. Default none.
	CSPDropHosts []string `yaml:"csp_drop_hosts"`
	// CSPKeepAboutDocuments keeps reports whose document is about:blank,
	// about:srcdoc or a bare "about" (how Firefox names a srcdoc frame);
	// extensions make many such frames. Default off: dropped as
	// about-document.
	CSPKeepAboutDocuments bool `yaml:"csp_keep_about_documents"`
	// SyslogUDP and SyslogTCP receive access log lines over syslog (RFC
	// 3164 or 5424; nginx: access_log syslog:server=127.0.0.1:5514).
	// Default off.
	SyslogUDP string `yaml:"syslog_udp"`
	SyslogTCP string `yaml:"syslog_tcp"`
	// SyslogAllow are the networks (CIDRs or addresses) syslog messages
	// are accepted from; others are dropped and counted. A message names
	// the client IP it is about, so whoever may send one may get any
	// address banned. Default loopback only (127.0.0.0/8, ::1).
	SyslogAllow []string `yaml:"syslog_allow"`

	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text (default) or json.
	LogFormat string `yaml:"log_format"`
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Redis:             "redis://127.0.0.1:6379/0",
		RedisPrefix:       "vigil:",
		DataDir:           "vigil-data",
		TailFrom:          "beginning",
		Allowlist:         append([]string(nil), detect.DefaultAllowlist...),
		Admin:             "127.0.0.1:9464",
		Listen:            "127.0.0.1:8080",
		IPv6BanPrefix:     128,
		BreakerPerRule:    50,
		BreakerOverall:    200,
		BreakerWindow:     10 * time.Minute,
		DjangoCacheKey:    ":1:EMERGENCY_LOCKDOWN",
		SentryMinSeverity: "high",
		ESNamespace:       "default",
		ESMode:            "auto",
		BodyLimit:         64 << 10,
		EventsMaxAge:      24 * time.Hour,
		EventsMaxBytes:    4 << 30,
		RateLimit:         20,
		MaxConnsPerClient: 128,
		Partitions:        8,
		StreamReplicas:    1,
		Lateness:          5 * time.Second,
		MaxKeys:           1_000_000,
		MaxBan:            30 * 24 * time.Hour,
		LogLevel:          "info",
		LogFormat:         "text",
	}
}

// LoadFile reads a YAML config file over c. Unknown keys are errors naming
// the file and line.
func (c *Config) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// Fields describes each setting: its yaml key, flag name and environment
// variable, for --help and for loading.
type Field struct {
	Key, Flag, Env string
	Index          int
}

// Fields lists the settings of Config.
func Fields() []Field {
	t := reflect.TypeOf(Config{})
	out := make([]Field, 0, t.NumField())
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("yaml")
		out = append(out, Field{Key: key, Flag: strings.ReplaceAll(key, "_", "-"), Env: "VIGIL_" + strings.ToUpper(key), Index: i})
	}
	return out
}

// Set sets the setting key from text, as from a flag or an environment
// variable. For list settings each call appends; comma-separated values are
// split.
func (c *Config) Set(key, value string) error {
	for _, f := range Fields() {
		if f.Key != key {
			continue
		}
		v := reflect.ValueOf(c).Elem().Field(f.Index)
		switch v.Interface().(type) {
		case string:
			v.SetString(value)
		case []string:
			for _, s := range strings.Split(value, ",") {
				if s = strings.TrimSpace(s); s != "" {
					v.Set(reflect.Append(v, reflect.ValueOf(s)))
				}
			}
		case int:
			n, err := strconv.Atoi(value)
			if err != nil {
				return fmt.Errorf("%s: %q is not an integer", key, value)
			}
			v.SetInt(int64(n))
		case int64:
			n, err := parseBytes(value)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			v.SetInt(n)
		case bool:
			b, err := strconv.ParseBool(value)
			if err != nil {
				return fmt.Errorf("%s: %q is not true or false", key, value)
			}
			v.SetBool(b)
		case time.Duration:
			var d detect.Duration
			if err := d.UnmarshalText([]byte(value)); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			v.SetInt(int64(d))
		}
		return nil
	}
	return fmt.Errorf("unknown setting %q", key)
}

// parseBytes reads 4294967296, 512MiB, 4GiB.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a byte size (e.g. 4GiB)", s)
	}
	return n * mult, nil
}

// IsList reports whether the setting key is a list: a list given in the
// environment or as flags replaces the default instead of adding to it.
func IsList(key string) bool {
	for _, f := range Fields() {
		if f.Key == key {
			return reflect.TypeOf(Config{}).Field(f.Index).Type.Kind() == reflect.Slice
		}
	}
	return false
}

// IsBool reports whether the setting key is a switch: its flag may be
// given without a value (--dry-run means --dry-run=true).
func IsBool(key string) bool {
	for _, f := range Fields() {
		if f.Key == key {
			return reflect.TypeOf(Config{}).Field(f.Index).Type.Kind() == reflect.Bool
		}
	}
	return false
}

// Reset sets the setting key to its zero value.
func (c *Config) Reset(key string) {
	for _, f := range Fields() {
		if f.Key == key {
			reflect.ValueOf(c).Elem().Field(f.Index).SetZero()
		}
	}
}

// LoadEnv applies VIGIL_* environment variables (lookup is os.LookupEnv in
// production, a map in tests).
func (c *Config) LoadEnv(lookup func(string) (string, bool)) error {
	var errs []error
	for _, f := range Fields() {
		if v, ok := lookup(f.Env); ok {
			if IsList(f.Key) {
				c.Reset(f.Key)
			}
			if err := c.Set(f.Key, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.Env, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Validate checks every setting without I/O and reports every problem.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if u, err := url.Parse(c.Redis); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		bad("redis", "%q is not a redis://, rediss:// or unix:// URL", Redact(c.Redis))
	}
	if c.NATS != "" {
		if _, err := url.Parse(c.NATS); err != nil {
			bad("nats", "%v", err)
		}
	}
	if err := c.validateRoles(); err != nil {
		errs = append(errs, err)
	}
	if c.NATSListen != "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			bad("nats_listen", "%v", err)
		}
	}
	if c.DataDir == "" {
		bad("data_dir", "must be set")
	}
	for _, g := range c.AccessLogs {
		if _, err := filepath.Match(g, ""); err != nil {
			bad("access_log", "%q: %v", g, err)
		}
	}
	if _, err := accesslog.ParseFormat(orAuto(c.AccessLogFormat)); err != nil {
		bad("access_log_format", "%v", err)
	}
	if c.TailFrom != "beginning" && c.TailFrom != "end" {
		bad("tail_from", "must be beginning or end, got %q", c.TailFrom)
	}
	if _, err := detect.NewAllowlist(c.Allowlist); err != nil {
		bad("allowlist", "%v", err)
	}
	if _, _, err := net.SplitHostPort(c.Admin); err != nil {
		bad("admin", "%v", err)
	}
	for _, f := range []struct{ key, addr string }{{"listen", c.Listen}, {"listen_tls", c.ListenTLS}, {"syslog_udp", c.SyslogUDP}, {"syslog_tcp", c.SyslogTCP}} {
		if f.addr != "" {
			if _, _, err := net.SplitHostPort(f.addr); err != nil {
				bad(f.key, "%v", err)
			}
		}
	}
	if c.ListenTLS != "" && (c.TLSCert == "" || c.TLSKey == "") {
		bad("listen_tls", "needs tls_cert and tls_key")
	}
	if _, err := c.TrustedProxyPrefixes(); err != nil {
		bad("trusted_proxies", "%v", err)
	}
	if _, err := parsePrefixes(c.SyslogAllow); err != nil {
		bad("syslog_allow", "%v", err)
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		bad("admin_token_file", "give admin_token or admin_token_file, not both")
	}
	if c.InsecureAdmin && !loopback(c.Admin) {
		bad("insecure_admin", "refused: the admin listener %s is not a loopback address; set admin_token_file instead", c.Admin)
	}
	if c.Pprof && c.AdminToken == "" && c.AdminTokenFile == "" && !loopback(c.Admin) {
		bad("pprof", "refused: the admin listener %s is not a loopback address and no admin token protects the profiles; set admin_token_file", c.Admin)
	}
	if c.IPv6BanPrefix < 16 || c.IPv6BanPrefix > 128 {
		bad("ipv6_ban_prefix", "must be 16..128, got %d", c.IPv6BanPrefix)
	}
	if _, err := c.Ladder(); err != nil {
		bad("ban_ladder", "%v", err)
	}
	if c.BreakerPerRule < 1 || c.BreakerOverall < 1 || c.BreakerWindow <= 0 {
		bad("breaker_per_rule", "breaker limits and window must be > 0")
	}
	switch c.SentryMinSeverity {
	case "low", "medium", "high", "critical":
	default:
		bad("sentry_min_severity", "must be low, medium, high or critical, got %q", c.SentryMinSeverity)
	}
	if len(c.ES) > 0 {
		if _, err := c.IndexConfig(false); err != nil {
			bad("es", "%v", err)
		}
	}
	if c.EventsToken != "" && c.EventsTokenFile != "" {
		bad("events_token_file", "give events_token or events_token_file, not both")
	}
	if t := strings.TrimSpace(c.EventsToken); t != "" && len(t) < 16 {
		bad("events_token", "must be at least 16 characters, as the secret files must (got %d)", len(t))
	}
	if c.BodyLimit < 1024 || c.BodyLimit > 16<<20 {
		bad("body_limit", "must be 1KiB..16MiB, got %d", c.BodyLimit)
	}
	if c.RateLimit < 1 {
		bad("rate_limit", "must be >= 1")
	}
	if c.MaxConns < 0 {
		bad("max_conns", "must be >= 0 (0: half the file descriptor limit), got %d", c.MaxConns)
	}
	if c.MaxConnsPerClient < 0 {
		bad("max_conns_per_client", "must be >= 0 (0: no cap), got %d", c.MaxConnsPerClient)
	}
	if c.StreamReplicas != 1 && c.StreamReplicas != 3 && c.StreamReplicas != 5 {
		bad("stream_replicas", "must be 1, 3 or 5, got %d", c.StreamReplicas)
	}
	if c.StreamReplicas > 1 && c.NATS == "" {
		bad("stream_replicas", "the embedded NATS is a single server: replicas need a NATS cluster (nats)")
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		bad("partitions", "must be 1..1024, got %d", c.Partitions)
	}
	if c.Lateness < 0 {
		bad("lateness", "must be >= 0")
	}
	if c.MaxKeys < 1 {
		bad("max_keys", "must be >= 1")
	}
	if c.MaxBan <= 0 {
		bad("max_ban", "must be > 0")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "must be text or json, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

func orAuto(s string) string {
	if s == "" {
		return "auto"
	}
	return s
}

// IndexConfig is the Elasticsearch configuration; with secrets it reads the
// API key and password files.
func (c *Config) IndexConfig(secrets bool) (index.Config, error) {
	ic := index.Config{Addresses: c.ES, Namespace: c.ESNamespace, Mode: c.ESMode, Username: c.ESUsername, CACert: c.ESCACert}
	if secrets {
		if c.ESAPIKeyFile != "" {
			k, err := readSecret(c.ESAPIKeyFile)
			if err != nil {
				return ic, fmt.Errorf("es_api_key_file: %w", err)
			}
			ic.APIKey = string(k)
		}
		if c.ESPasswordFile != "" {
			p, err := os.ReadFile(c.ESPasswordFile)
			if err != nil {
				return ic, fmt.Errorf("es_password_file: %w", err)
			}
			ic.Password = strings.TrimSpace(strings.SplitN(string(p), "\n", 2)[0])
		}
	}
	return ic, ic.Validate()
}

// Ladder parses BanLadder.
func (c *Config) Ladder() ([]time.Duration, error) {
	var out []time.Duration
	for i, s := range c.BanLadder {
		var d detect.Duration
		if err := d.UnmarshalText([]byte(s)); err != nil || d <= 0 {
			return nil, fmt.Errorf("[%d]: %q is not a positive duration", i, s)
		}
		out = append(out, d.D())
	}
	return out, nil
}

// TrustedProxyPrefixes parses TrustedProxies.
func (c *Config) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	return parsePrefixes(c.TrustedProxies)
}

// parsePrefixes parses CIDRs or single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("[%d]: %q is not a CIDR or an address", i, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Redact hides the password of a URL: secrets print as <secret>.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "<secret>")
		return strings.Replace(u.String(), "%3Csecret%3E", "<secret>", 1)
	}
	return raw
}

// Redacted returns c as YAML with secrets hidden, for `vigil config`.
func (c Config) Redacted() string {
	c.Redis = Redact(c.Redis)
	c.NATS = Redact(c.NATS)
	for _, s := range []*string{&c.EventsToken, &c.AdminToken} {
		if *s != "" {
			*s = "<secret>"
		}
	}
	c.ES = append([]string(nil), c.ES...)
	for i := range c.ES {
		c.ES[i] = Redact(c.ES[i])
	}
	c.SentryDSN = Redact(c.SentryDSN)
	if u, err := url.Parse(c.SentryDSN); err == nil && u.User != nil {
		u.User = url.User("<secret>")
		c.SentryDSN = strings.Replace(u.String(), "%3Csecret%3E", "<secret>", 1)
	}
	out, _ := yaml.Marshal(c)
	return string(out)
}

// Help is the one-line help of each setting, for flags and `vigil run --help`.
var Help = map[string]string{
	"redis":                    "Redis URL bans are written to (redis://[:password@]host:port/db)",
	"redis_prefix":             "prefix of every Redis key Vigil writes",
	"nats":                     "external NATS URL (cluster with JetStream); empty = start an embedded server",
	"stream_replicas":          "copies a clustered NATS keeps of each stream: 1, 3 or 5",
	"roles":                    "run only these roles: ingest, detect, respond, index (repeatable or comma-separated); empty = all",
	"nats_listen":              "also serve the embedded NATS on this TCP address (e.g. 127.0.0.1:4222); empty = in-process only",
	"data_dir":                 "directory for the embedded JetStream store and tail checkpoints",
	"access_log":               "access log path or glob to follow (repeatable; comma-separated in env)",
	"access_log_format":        "auto, nginx-combined, nginx-main, apache-combined or nginx-json",
	"tail_from":                "where to start a log seen for the first time: beginning or end",
	"rules":                    "directory of rule files replacing the built-in pack (see vigil rules dump)",
	"allowlist":                "network never banned, CIDR (repeatable; replaces the defaults)",
	"admin":                    "admin listener address: /metrics, /healthz, /readyz",
	"partitions":               "event subjects per source (vigil.events.<source>.<n>)",
	"lateness":                 "how far out of order an event may arrive per key and still count",
	"max_keys":                 "cap on detector windows; the least recently seen are evicted past it",
	"dry_run":                  "log and audit actions without applying them",
	"max_ban":                  "cap on any ban's duration",
	"events_max_age":           "how long VIGIL_EVENTS keeps events",
	"events_max_bytes":         "size cap of VIGIL_EVENTS (e.g. 4GiB); the oldest are dropped past it",
	"admin_token":              "bearer token of the admin API (prefer admin_token_file)",
	"admin_token_file":         "file holding the admin API token",
	"insecure_admin":           "serve the admin API without a token (only on a loopback admin address)",
	"pprof":                    "serve Go's runtime profiles at /debug/pprof/ on the admin listener (behind the admin token if set)",
	"ipv6_ban_prefix":          "widen IPv6 bans to this prefix length (e.g. 64)",
	"ban_ladder":               "ban durations for repeat offenders, e.g. 72h,720h (the last repeats)",
	"breaker_per_rule":         "automatic bans and token revocations one rule may make within breaker_window before the breaker stops them",
	"breaker_overall":          "automatic bans and token revocations all rules together may make within breaker_window",
	"breaker_window":           "the circuit breakers' window",
	"django_cache_key":         "Django cache key mirrored during a lockdown (KEY_PREFIX:VERSION:EMERGENCY_LOCKDOWN)",
	"sentry_dsn":               "Sentry DSN: detections >= sentry_min_severity and breaker trips are sent; empty = off",
	"sentry_min_severity":      "low, medium, high or critical",
	"sentry_environment":       "Sentry environment tag",
	"es":                       "Elasticsearch URL to index events, alerts and audit into (repeatable); empty = off",
	"es_namespace":             "namespace of the indices: logs-vigil.<kind>-<namespace>",
	"es_mode":                  "auto, datastream or index (aliases over time-based indices)",
	"es_api_key_file":          "file holding an Elasticsearch API key",
	"es_username":              "Elasticsearch basic-auth user",
	"es_password_file":         "file holding the Elasticsearch password",
	"es_ca_cert":               "PEM CA certificate of an https:// Elasticsearch",
	"listen":                   "public listener for CSP reports and application events (plain HTTP); empty = off",
	"listen_tls":               "public listener over HTTPS with HTTP/2 (needed for Reporting API reports)",
	"tls_cert":                 "PEM certificate for listen_tls",
	"tls_key":                  "PEM private key for listen_tls",
	"trusted_proxies":          "CIDR of a proxy whose X-Forwarded-For is believed (repeatable)",
	"events_token":             "bearer token the application sends to /events (prefer events_token_file)",
	"events_token_file":        "file holding the /events bearer token",
	"events_hmac_secret_file":  "file holding a secret for HMAC-signed /events requests",
	"body_limit":               "largest report or event request body (e.g. 64KiB)",
	"rate_limit":               "requests per second per client IP on the public listener (bursts of 3x)",
	"max_conns":                "open connections on the public listener; at the cap the longest idle one is closed (0: half the fd limit, at most 16384)",
	"max_conns_per_client":     "open connections of one client IP on the public listener, trusted proxies exempt; at the cap its longest idle one is closed (0: no cap)",
	"cors_origins":             "origin allowed to post reports cross-origin (repeatable; default any)",
	"csp_documents":            "origin whose pages may report CSP violations (repeatable; default any)",
	"csp_drop_hosts":           "host of an injected widget whose CSP reports are noise (repeatable)",
	"csp_keep_about_documents": "keep CSP reports from about:blank/about:srcdoc documents (Firefox reports a srcdoc frame's violations so); default: dropped as noise",
	"csp_drop_schemes":         "URI scheme whose CSP reports are extension/browser noise (repeatable; replaces the defaults)",
	"syslog_udp":               "receive access log lines over syslog UDP on this address (e.g. 127.0.0.1:5514)",
	"syslog_allow":             "CIDR or address syslog messages are accepted from (repeatable; default loopback only: a message names the IP to ban)",
	"syslog_tcp":               "receive access log lines over syslog TCP on this address",
	"log_level":                "debug, info, warn or error",
	"log_format":               "text or json",
}

// loopback reports whether a listen address is on a loopback interface.
func loopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
