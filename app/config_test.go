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
	err := cfg.Validate()
	for _, key := range []string{"redis:", "partitions:", "tail_from:", "insecure_admin:", "pprof:", `access_log: "/var/log/nginx/[access.log"`} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v lacks %s", err, key)
		}
	}
}
