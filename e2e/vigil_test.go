package e2e

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// runVigil runs `vigil run` in-process against rs, with every listener on a
// free loopback port (the public one off unless set), until the test ends.
// set adjusts the configuration first.
func runVigil(t *testing.T, rs *redistest.Server, set func(*app.Config)) *app.App {
	t.Helper()
	cfg := app.Default()
	cfg.Redis, cfg.RedisPrefix = rs.URL, rs.Prefix
	cfg.DataDir = t.TempDir()
	cfg.Admin, cfg.Listen = "127.0.0.1:0", ""
	if set != nil {
		set(&cfg)
	}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("vigil: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if _, err := a.AdminAddr(wctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// addr waits for one of a's listeners ("admin", "http", "https").
func addr(t *testing.T, a *app.App, which string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var s string
	var err error
	if which == "admin" {
		s, err = a.AdminAddr(ctx)
	} else {
		s, err = a.PublicAddr(ctx, which)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}
