package app

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/bench/loggen"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// BenchmarkStreaming measures the live path end to end: a 500,000-line
// nginx log is tailed, parsed, published to JetStream in batches, consumed
// by the detector and evaluated against the default pack. events/s is
// events through the detector per second of wall time, start-up included.
func BenchmarkStreaming(b *testing.B) {
	const lines = 500_000
	rs := redistest.Start(b)
	logDir := b.TempDir()
	f, err := os.Create(filepath.Join(logDir, "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	st, err := loggen.Generate(w, loggen.Config{Lines: lines, Seed: 1, Start: time.Now().Add(-time.Duration(lines/2000) * time.Second)})
	if err != nil {
		b.Fatal(err)
	}
	w.Flush()
	f.Close()
	events := int64(st.Lines - st.Cut)
	var total int64
	var elapsed time.Duration
	for b.Loop() {
		cfg := Default()
		cfg.Redis, cfg.RedisPrefix = rs.URL, rs.Prefix
		cfg.DataDir = b.TempDir()
		cfg.Admin = "127.0.0.1:0"
		cfg.Listen = ""
		cfg.AccessLogs = []string{filepath.Join(logDir, "*.log")}
		a, err := New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- a.Run(ctx) }()
		for a.detectedEvents() < events {
			time.Sleep(time.Millisecond)
		}
		elapsed += time.Since(start)
		total += events
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
}
