package app

import (
	"strings"
	"testing"
)

// The sample configuration shipped for systemd loads and validates.
func TestDeployConfigLoads(t *testing.T) {
	cfg := Default()
	if err := cfg.LoadFile("../deploy/systemd/vigil.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.AccessLogs) != 1 || cfg.IPv6BanPrefix != 64 {
		t.Fatalf("loaded %+v", cfg)
	}
}

// Secrets print as <secret>.
func TestRedactedHidesSecrets(t *testing.T) {
	cfg := Default()
	cfg.Redis = "redis://:hunter2@127.0.0.1:6379/0"
	cfg.EventsToken = "events-secret-value"
	cfg.AdminToken = "admin-secret-value"
	cfg.SentryDSN = "https://publickey123@o1.ingest.sentry.io/42"
	out := cfg.Redacted()
	for _, secret := range []string{"hunter2", "events-secret-value", "admin-secret-value", "publickey123"} {
		if strings.Contains(out, secret) {
			t.Errorf("config dump shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "<secret>") {
		t.Errorf("no <secret> in\n%s", out)
	}
}

// Bad settings are reported together, each naming its key.
func TestValidateNamesEveryBadKey(t *testing.T) {
	cfg := Default()
	cfg.Redis = "http://x"
	cfg.Partitions = 0
	cfg.TailFrom = "middle"
	cfg.InsecureAdmin = true
	cfg.Pprof = true
	cfg.Admin = "0.0.0.0:9464"
	cfg.AccessLogs = []string{"/var/log/nginx/[access.log"}
	cfg.SyslogAllow = []string{"10.0.0.0/8", "nginx-host"}
	cfg.MaxConns, cfg.MaxConnsPerClient = -1, -2
	cfg.EventsToken = "secret"
	err := cfg.Validate()
	for _, key := range []string{"redis:", "partitions:", "tail_from:", "insecure_admin:", "pprof:", `access_log: "/var/log/nginx/[access.log"`,
		`syslog_allow: [1]: "nginx-host" is not a CIDR or an address`, "max_conns:", "max_conns_per_client:", "events_token: must be at least 16"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v lacks %s", err, key)
		}
	}
}

// Roles: unknown names, index without Elasticsearch, and a split process
// with a NATS no other process can reach are errors naming the key.
func TestValidateRoles(t *testing.T) {
	for _, c := range []struct {
		name  string
		set   func(*Config)
		error string // "" = valid
	}{
		{"default: all", func(c *Config) {}, ""},
		{"all named, embedded NATS", func(c *Config) { c.Roles = []string{"ingest", "detect", "respond"} }, ""},
		{"unknown", func(c *Config) { c.Roles = []string{"ingest", "collect"}; c.NATS = "nats://n:4222" }, `roles: unknown role "collect"`},
		{"index without es", func(c *Config) { c.Roles = []string{"index"}; c.NATS = "nats://n:4222" }, "roles: index needs es"},
		{"index with es", func(c *Config) {
			c.Roles = []string{"index"}
			c.NATS = "nats://n:4222"
			c.ES = []string{"http://es:9200"}
		}, ""},
		{"split on an unreachable embedded NATS", func(c *Config) { c.Roles = []string{"detect"} }, "roles: this process runs only detect"},
		{"split serving the embedded NATS", func(c *Config) { c.Roles = []string{"ingest"}; c.NATSListen = "0.0.0.0:4222" }, ""},
	} {
		cfg := Default()
		c.set(&cfg)
		err := cfg.Validate()
		switch {
		case c.error == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.error != "" && (err == nil || !strings.Contains(err.Error(), c.error)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.error)
		}
	}
	cfg := Default()
	if err := cfg.LoadEnv(func(k string) (string, bool) { return "ingest, respond", k == "VIGIL_ROLES" }); err != nil {
		t.Fatal(err)
	}
	if r := cfg.roles(); !r.ingest || r.detect || !r.respond || r.index {
		t.Errorf("VIGIL_ROLES=ingest,respond gave %+v", r)
	}
}
