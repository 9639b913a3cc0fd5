package app

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/respond"
)

// api is the admin API under /api/v1 on the admin listener: bans,
// lockdown, revocations, recent alerts and audit entries, explain, and the
// circuit breakers. Every request needs the admin bearer token; changes are
// applied through the responder, so they are audited and honour dry-run and
// the allow-list like automatic ones.
type api struct {
	token    []byte
	store    *respond.Store
	resp     *respond.Responder
	js       jetstream.JetStream
	allow    *detect.Allowlist
	explain  func(key string) []detect.KeyInfo // nil when the detector runs in another process
	maxBody  int64
	unsecure bool
	// audit appends an entry to VIGIL_AUDIT.
	audit func(ctx context.Context, au *event.Audit) error
}

// apply runs a manual action and writes its audit entry, refused and failed
// ones included, before answering.
func (p *api) apply(r *http.Request, a respond.ManualAction) (any, error) {
	au, err := p.resp.Apply(r.Context(), a)
	if au.Action != "" {
		if aerr := p.audit(r.Context(), &au); aerr != nil {
			return nil, &apiError{status: http.StatusServiceUnavailable, msg: "writing the audit entry: " + aerr.Error()}
		}
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"audit": au}, nil
}

// apiError is an error answered as {"error": ..., "field": ...}.
type apiError struct {
	status int
	field  string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badField(field, format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

func (p *api) routes(mux *http.ServeMux) {
	h := func(pattern string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !p.authorized(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-admin"`)
				writeJSONError(w, &apiError{status: http.StatusUnauthorized, msg: "missing or wrong admin token (Authorization: Bearer ...)"})
				return
			}
			out, err := fn(r)
			if err != nil {
				writeJSONError(w, err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if r.Method == http.MethodPost {
				w.WriteHeader(http.StatusCreated)
			}
			_ = json.NewEncoder(w).Encode(out)
		})
	}
	h("GET /api/v1/bans", p.listBans)
	h("POST /api/v1/bans", p.addBan)
	h("DELETE /api/v1/bans/{ip...}", p.removeBan)
	h("GET /api/v1/lockdown", p.getLockdown)
	h("POST /api/v1/lockdown", p.setLockdown)
	h("DELETE /api/v1/lockdown", p.releaseLockdown)
	h("POST /api/v1/revocations", p.revoke)
	h("GET /api/v1/alerts", func(r *http.Request) (any, error) { return p.recent(r, bus.StreamAlerts, "alerts") })
	h("GET /api/v1/audit", func(r *http.Request) (any, error) { return p.recent(r, bus.StreamAudit, "audit") })
	h("GET /api/v1/explain/{key}", p.explainKey)
	h("GET /api/v1/breakers", func(r *http.Request) (any, error) { return map[string]any{"breakers": p.resp.Breakers()}, nil })
	h("POST /api/v1/breakers/reset", p.resetBreaker)
	mux.HandleFunc("GET /api/v1/alerts/follow", func(w http.ResponseWriter, r *http.Request) {
		if !p.authorized(r) {
			writeJSONError(w, &apiError{status: http.StatusUnauthorized, msg: "missing or wrong admin token"})
			return
		}
		p.follow(w, r)
	})
}

func (p *api) authorized(r *http.Request) bool {
	return p.unsecure || bearer(r, p.token)
}

// bearer reports whether r carries "Authorization: Bearer <token>" (a
// constant-time comparison); never for an empty token.
func bearer(r *http.Request, token []byte) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && len(token) > 0 && subtle.ConstantTimeCompare([]byte(got), token) == 1
}

func writeJSONError(w http.ResponseWriter, err error) {
	var ae *apiError
	var fe *respond.FieldError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &fe):
		ae = &apiError{status: http.StatusBadRequest, field: fe.Field, msg: fe.Msg}
	case respond.Retryable(err):
		ae = &apiError{status: http.StatusServiceUnavailable, msg: "redis unavailable: " + err.Error()}
	default:
		ae = &apiError{status: http.StatusInternalServerError, msg: err.Error()}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.status)
	body := map[string]string{"error": ae.msg}
	if ae.field != "" {
		body["field"] = ae.field
	}
	_ = json.NewEncoder(w).Encode(body)
}

// decode reads a JSON body strictly: unknown fields and bad types are 400s
// naming the field.
func (p *api) decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, p.maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return badField(te.Field, "must be a %s", te.Type.Kind())
		case errors.As(err, &se):
			return badField("", "malformed JSON at offset %d: %v", se.Offset, err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badField(f, "unknown field")
		case errors.Is(err, io.EOF):
			return badField("", "empty body: expected a JSON object")
		}
		return badField("", "malformed JSON: %v", err)
	}
	return nil
}

// duration reads an optional duration field ("24h", "30m", "7d").
func duration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d detect.Duration
	if err := d.UnmarshalText([]byte(s)); err != nil || d < 0 {
		return 0, badField(field, "%q is not a duration (e.g. 30m, 24h, 7d)", s)
	}
	return d.D(), nil
}

func actor(r *http.Request) string {
	a := r.Header.Get("X-Vigil-Actor")
	if a == "" {
		a = "api"
	}
	if len(a) > 64 {
		a = a[:64]
	}
	return "admin:" + a
}

func (p *api) listBans(r *http.Request) (any, error) {
	bans, err := p.store.Bans(r.Context())
	if err != nil {
		return nil, err
	}
	if bans == nil {
		bans = []respond.BanRecord{}
	}
	return map[string]any{"bans": bans}, nil
}

func (p *api) addBan(r *http.Request) (any, error) {
	var in struct {
		IP       string `json:"ip"`
		Duration string `json:"duration"`
		Reason   string `json:"reason"`
		Force    bool   `json:"force"`
	}
	if err := p.decode(r, &in); err != nil {
		return nil, err
	}
	d, err := duration("duration", in.Duration)
	if err != nil {
		return nil, err
	}
	return p.apply(r, respond.ManualAction{Kind: "ban", Target: in.IP, Duration: d, Reason: in.Reason, Actor: actor(r), Force: in.Force})
}

func (p *api) removeBan(r *http.Request) (any, error) {
	return p.apply(r, respond.ManualAction{Kind: "unban", Target: r.PathValue("ip"), Actor: actor(r)})
}

func (p *api) getLockdown(r *http.Request) (any, error) {
	l, err := p.store.Lockdown(r.Context())
	if err != nil {
		return nil, err
	}
	return map[string]any{"lockdown": l}, nil
}

func (p *api) setLockdown(r *http.Request) (any, error) {
	var in struct {
		Mode     string `json:"mode"`
		Duration string `json:"duration"`
		Reason   string `json:"reason"`
	}
	if err := p.decode(r, &in); err != nil {
		return nil, err
	}
	d, err := duration("duration", in.Duration)
	if err != nil {
		return nil, err
	}
	return p.apply(r, respond.ManualAction{Kind: "lockdown-on", Mode: in.Mode, Duration: d, Reason: in.Reason, Actor: actor(r)})
}

func (p *api) releaseLockdown(r *http.Request) (any, error) {
	return p.apply(r, respond.ManualAction{Kind: "lockdown-off", Actor: actor(r)})
}

func (p *api) revoke(r *http.Request) (any, error) {
	var in struct {
		JTI      string `json:"jti"`
		User     string `json:"user"`
		All      bool   `json:"all"`
		Reason   string `json:"reason"`
		Duration string `json:"duration"`
	}
	if err := p.decode(r, &in); err != nil {
		return nil, err
	}
	d, err := duration("duration", in.Duration)
	if err != nil {
		return nil, err
	}
	a := respond.ManualAction{Reason: in.Reason, Actor: actor(r), Duration: d}
	switch {
	case in.JTI != "" && in.User == "" && !in.All:
		a.Kind, a.Target = "jti-deny", in.JTI
	case in.User != "" && in.JTI == "" && !in.All:
		a.Kind, a.Target = "revoke-user", in.User
	case in.All && in.JTI == "" && in.User == "":
		a.Kind = "revoke-all"
	default:
		return nil, badField("jti", "give exactly one of jti, user or all")
	}
	return p.apply(r, a)
}

func (p *api) resetBreaker(r *http.Request) (any, error) {
	var in struct {
		Scope string `json:"scope"`
	}
	if err := p.decode(r, &in); err != nil {
		return nil, err
	}
	was, err := p.resp.ResetBreaker(r.Context(), in.Scope)
	if err != nil {
		return nil, err
	}
	return map[string]any{"reset": was}, nil
}

// recent returns the last messages of a stream as JSON values.
func (p *api) recent(r *http.Request, stream, name string) (any, error) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return nil, badField("limit", "must be 1..1000, got %q", s)
		}
		limit = n
	}
	msgs, err := lastMessages(r.Context(), p.js, stream, limit, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{name: msgs}, nil
}

// lastMessages reads up to limit of the newest messages of a stream, oldest
// first, keeping those keep accepts (nil keeps all).
func lastMessages(ctx context.Context, js jetstream.JetStream, stream string, limit int, keep func([]byte) bool) ([]json.RawMessage, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := []json.RawMessage{}
	if info.State.Msgs == 0 {
		return out, nil
	}
	scan := uint64(limit)
	if keep != nil {
		scan = 5000 // look further back when filtering
	}
	start := info.State.FirstSeq
	if info.State.LastSeq >= scan && info.State.LastSeq-scan+1 > start {
		start = info.State.LastSeq - scan + 1
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start})
	if err != nil {
		return nil, err
	}
	for seq := start; seq <= info.State.LastSeq; seq++ {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			break
		}
		if keep == nil || keep(m.Data()) {
			out = append(out, json.RawMessage(m.Data()))
		}
		if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= info.State.LastSeq {
			break
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// follow streams new alerts as NDJSON until the client goes away.
func (p *api) follow(w http.ResponseWriter, r *http.Request) {
	s, err := p.js.Stream(r.Context(), bus.StreamAlerts)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	c, err := s.OrderedConsumer(r.Context(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		writeJSONError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	for r.Context().Err() == nil {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				_, _ = w.Write([]byte("\n")) // keep-alive
				if flusher != nil {
					flusher.Flush()
				}
				continue
			}
			return
		}
		_, _ = w.Write(append(m.Data(), '\n'))
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// explainKey gathers what Vigil knows about a key.
func (p *api) explainKey(r *http.Request) (any, error) {
	key := r.PathValue("key")
	out := map[string]any{"key": key}
	if p.explain != nil {
		out["rules"] = p.explain(key)
	} else {
		out["rules"] = nil
		out["rules_note"] = "the detector runs in another process (roles); its windows are not shown here"
	}
	if ip, err := netip.ParseAddr(key); err == nil {
		key = ip.Unmap().String()
		out["key"] = key
		out["allowlisted"] = p.allow.Contains(ip)
		bans, err := p.store.Bans(r.Context())
		if err != nil {
			return nil, err
		}
		out["ban"] = nil
		for _, b := range bans {
			if b.IP == key {
				out["ban"] = b
			}
		}
		n, err := p.store.Offences(r.Context(), key)
		if err != nil {
			return nil, err
		}
		out["offences"] = n
	}
	needle := []byte(`"key":"` + key + `"`)
	alerts, err := lastMessages(r.Context(), p.js, bus.StreamAlerts, 20, func(b []byte) bool { return bytes.Contains(b, needle) })
	if err != nil {
		return nil, err
	}
	out["alerts"] = alerts
	target := []byte(`"target":"` + key + `"`)
	audit, err := lastMessages(r.Context(), p.js, bus.StreamAudit, 20, func(b []byte) bool { return bytes.Contains(b, target) })
	if err != nil {
		return nil, err
	}
	out["audit"] = audit
	return out, nil
}

// engineLock serialises the detector's engine with explain requests.
type engineLock struct {
	mu     sync.Mutex
	engine *detect.Engine
}

func (l *engineLock) explain(key string) []detect.KeyInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.engine.Explain(key)
}
