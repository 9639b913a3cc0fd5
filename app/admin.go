package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	if a.cfg.Pprof {
		a.profiles(mux)
	}
	switch {
	case a.api != nil:
		a.api.routes(mux)
	case !a.roles.respond:
		mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			writeJSONError(w, &apiError{status: http.StatusNotFound,
				msg: fmt.Sprintf("this process runs the roles %s; the admin API is served by the process that runs respond", strings.Join(a.roles.names(), ", "))})
		})
	default:
		mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			writeJSONError(w, &apiError{status: http.StatusServiceUnavailable,
				msg: "admin API disabled: start vigil with admin_token_file (or VIGIL_ADMIN_TOKEN)"})
		})
	}
	return mux
}

// readyz reports 200 when the pipeline can do its work: running, NATS
// connected, Redis answering (when this process runs the respond role). The
// body names what is not, and the roles.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{"pipeline": "ok", "nats": "ok"}
	ok := true
	if !a.ready.Load() {
		checks["pipeline"], ok = "starting or stopping", false
	}
	if nc := a.nc.Load(); nc == nil || nc.Status() != nats.CONNECTED {
		checks["nats"], ok = "not connected", false
	}
	if pub := a.publisher.Load(); pub != nil {
		checks["publish"] = "ok"
		if pub.Stalled() {
			// Connected, maybe, but not storing: a frozen or full server.
			checks["publish"], ok = "stalled: JetStream has not stored received events in time; reports and events are answered 503", false
		}
	}
	if a.roles.respond {
		checks["redis"] = "ok"
		if a.redis == nil {
			checks["redis"], ok = "not connected", false
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			defer cancel()
			if err := a.redis.Ping(ctx).Err(); err != nil {
				checks["redis"], ok = err.Error(), false
			}
		}
	}
	if det := a.detector.Load(); det != nil {
		// Ready in every state: a standby takes over when the active one
		// goes.
		checks["detector"] = det.state()
	}
	if ix := a.indexer.Load(); ix != nil {
		checks["elasticsearch"] = "ok"
		if err := ix.Err(); err != nil {
			checks["elasticsearch"] = err.Error() // indexing lags, events wait in JetStream: not fatal for readiness
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "roles": a.roles.names(), "checks": checks})
}

// profiles serves net/http/pprof under /debug/pprof/, behind the admin
// token when one is set (in every process, whatever its roles; without a
// token Validate allows profiles only on a loopback admin address).
func (a *App) profiles(mux *http.ServeMux) {
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if len(a.token) > 0 && !bearer(r, a.token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-admin"`)
				writeJSONError(w, &apiError{status: http.StatusUnauthorized, msg: "missing or wrong admin token (Authorization: Bearer ...)"})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /debug/pprof/", guard(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/cmdline", guard(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", guard(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", guard(pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", guard(pprof.Trace))
}
