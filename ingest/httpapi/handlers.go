package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest"
	"github.com/vigil-soc/vigil/ingest/appevent"
	"github.com/vigil-soc/vigil/ingest/csp"
)

// Handler returns the endpoints:
//
//	POST /csp-report  application/csp-report (or application/json): legacy report-uri
//	POST /reports     application/reports+json: Reporting API (CORS preflight answered)
//	POST /events      application/json: application events; bearer token or HMAC signature,
//	                  optional Idempotency-Key (stored once per key and body)
//
// Success is 204; refusals are 400/401/405/413/415/429 with a JSON body
// {"error": ..., "field": ...}; 503 when the bus cannot take the events.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/csp-report", s.endpoint("csp-report", s.cspReport))
	mux.HandleFunc("/reports", s.endpoint("reports", s.cspReport))
	mux.HandleFunc("/events", s.endpoint("events", s.events))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, code := s.limit(w, r, "other"); code != 0 {
			s.m.Requests.WithLabelValues("other", strconv.Itoa(code)).Inc()
			return
		}
		s.m.Requests.WithLabelValues("other", "404").Inc()
		writeError(w, http.StatusNotFound, "", "no such endpoint: POST /csp-report, /reports or /events")
	})
	return mux
}

// endpoint wraps a handler with what every endpoint does: method checks,
// CORS, the client IP, the rate limit, the body limit and the metrics.
func (s *Server) endpoint(name string, h func(w http.ResponseWriter, r *http.Request, client netip.Addr, body []byte) (int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		code := s.serve(name, w, r, h)
		s.m.requests(name, code).Inc()
	}
}

func (s *Server) serve(name string, w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request, netip.Addr, []byte) (int, error)) int {
	cors := name != "events"
	if cors {
		s.corsHeaders(w, r)
	}
	// An application's events are not rate limited once authenticated
	// (its servers ship from few addresses, and a refused batch is only
	// retried later); requests that fail authentication are (events).
	var client netip.Addr
	if name == "events" && r.Method == http.MethodPost {
		client = s.clientIP(r)
	} else {
		var code int
		if client, code = s.limit(w, r, name); code != 0 {
			return code
		}
	}
	switch r.Method {
	case http.MethodOptions:
		if !cors {
			w.Header().Set("Allow", "POST")
			return writeError(w, http.StatusMethodNotAllowed, "", "use POST")
		}
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Set("Access-Control-Max-Age", "86400")
		s.m.Preflights.WithLabelValues(name).Inc()
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	case http.MethodPost:
	default:
		if cors {
			w.Header().Set("Allow", "POST, OPTIONS")
		} else {
			w.Header().Set("Allow", "POST")
		}
		return writeError(w, http.StatusMethodNotAllowed, "", "use POST")
	}
	if r.ContentLength > s.cfg.BodyLimit {
		return writeError(w, http.StatusRequestEntityTooLarge, "", "body larger than "+strconv.FormatInt(s.cfg.BodyLimit, 10)+" bytes")
	}
	body, err := readBody(w, r, s.cfg.BodyLimit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return writeError(w, http.StatusRequestEntityTooLarge, "", "body larger than "+strconv.FormatInt(s.cfg.BodyLimit, 10)+" bytes")
		}
		return writeError(w, http.StatusBadRequest, "", "reading body: "+err.Error())
	}
	code, err := h(w, r, client, body)
	if err != nil {
		var ce *csp.Error
		var ae *appevent.Error
		switch {
		case errors.As(err, &ce):
			return writeError(w, ce.Status, ce.Field, ce.Msg)
		case errors.As(err, &ae):
			return writeError(w, ae.Status, ae.Field, ae.Msg)
		case code != 0:
			return writeError(w, code, "", err.Error())
		}
		if r.Context().Err() != nil {
			// The client went away while its events were being stored
			// (they still are): nginx's "client closed request".
			s.log.Debug("client closed the request before its events were stored", "endpoint", name)
			return statusClientClosed
		}
		if errors.Is(err, ingest.ErrSlow) || errors.Is(err, ingest.ErrStopped) {
			// The publisher says so once, not once a request.
			s.log.Debug("events not stored", "endpoint", name, "err", err)
		} else {
			s.log.Warn("publishing events failed", "endpoint", name, "err", err)
		}
		return writeError(w, http.StatusServiceUnavailable, "", "events could not be stored, retry later")
	}
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// limit takes a token of the client's rate limit for any request, wrong
// method or path included. It returns the client and 0 to go on, or 429
// once it has answered so.
func (s *Server) limit(w http.ResponseWriter, r *http.Request, name string) (netip.Addr, int) {
	client := s.clientIP(r)
	if s.limiter.allow(client, s.now()) {
		return client, 0
	}
	s.m.RateLimited.WithLabelValues(name).Inc()
	w.Header().Set("Retry-After", "1")
	return client, writeError(w, http.StatusTooManyRequests, "", "rate limit exceeded for "+client.String())
}

// readBody reads a request body of at most limit bytes; a longer one is a
// *http.MaxBytesError. A small body of announced length (checked against
// limit already) is read into a buffer of that size; a larger one grows
// with what arrives, so a client announcing much and sending little does
// not hold memory.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= min(limit, 8<<10) {
		// net/http ends the body after Content-Length bytes.
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// requestName names a request uniquely, across restarts too: the
// process's nonce and a count.
func (s *Server) requestName() string {
	return s.nonce + strconv.FormatUint(s.requests.Add(1), 36)
}

// statusClientClosed is the status counted for a request whose client left
// before the answer (nginx's 499); nothing is written.
const statusClientClosed = 499

// cspReport handles both report formats, dispatching on the content type.
func (s *Server) cspReport(w http.ResponseWriter, r *http.Request, client netip.Addr, body []byte) (int, error) {
	res, err := csp.Parse(r.Header.Get("Content-Type"), body, csp.Meta{ClientIP: client, UserAgent: r.UserAgent(), Received: s.now(), Request: s.requestName()}, &s.cfg.CSPFilter)
	if err != nil {
		reason := "malformed"
		var ce *csp.Error
		if errors.As(err, &ce) && ce.Status == http.StatusUnsupportedMediaType {
			reason = "content-type"
		}
		s.m.Skipped.WithLabelValues(event.SourceCSP, reason).Inc()
		return 0, err
	}
	for reason, n := range res.Filtered {
		s.m.Skipped.WithLabelValues(event.SourceCSP, reason).Add(float64(n))
	}
	for typ, n := range res.Other { // types csp.Parse does not know are "other"
		s.m.OtherReports.WithLabelValues(typ).Add(float64(n))
	}
	if len(res.Events) == 0 {
		return 0, nil
	}
	for i := range res.Events {
		s.m.events(event.SourceCSP, res.Events[i].CSP.Format).Inc()
	}
	// Answered once JetStream has them: a 204 means nothing accepted can
	// be lost.
	return 0, s.pub.Publish(r.Context(), event.SourceCSP, res.Events)
}

// events handles application security events.
func (s *Server) events(w http.ResponseWriter, r *http.Request, client netip.Addr, body []byte) (code int, err error) {
	// Failed attempts spend the client's tokens; once they are spent, no
	// credential is even checked until the bucket refills, so guessing the
	// token or the key goes no faster than the rate limit.
	if s.limiter.spent(client, s.now()) {
		s.m.RateLimited.WithLabelValues("events").Inc()
		w.Header().Set("Retry-After", "1")
		return http.StatusTooManyRequests, errors.New("rate limit exceeded for " + client.String() + " after failed authentication")
	}
	code, sig, keyed, err := s.authenticate(r, body)
	if sig != "" {
		// A signed request not answered 204 may be sent again, and within
		// the same second its signature is the same: forget it then. Its
		// events may be stored already (a 503 after they were queued),
		// but every signed request is published under a dedupe key, so
		// the stream keeps one copy.
		defer func() {
			if err != nil {
				s.replay.forget(sig)
			}
		}()
	}
	if err != nil {
		s.m.Unauthorized.Inc()
		s.limiter.allow(client, s.now()) // a failed attempt spends a token
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-events"`)
		}
		return code, err
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return http.StatusUnsupportedMediaType, errors.New("Content-Type must be application/json")
	}
	key, err := idempotencyKey(r, body)
	if err != nil {
		return 0, &appevent.Error{Status: http.StatusBadRequest, Field: "Idempotency-Key", Msg: err.Error()}
	}
	if sig != "" && !keyed {
		// A v1 signature does not cover the header, which a replay could
		// drop or change: such a request is stored once per signature.
		key = "s" + hex.EncodeToString([]byte(sig)[:16])
	}
	request := key
	if request == "" {
		// Not sent again as itself: its events get ids of their own.
		request = s.requestName()
	}
	received := s.now()
	evs, st, err := appevent.Parse(body, received, request)
	if err != nil {
		s.m.Skipped.WithLabelValues(event.SourceApp, "malformed").Inc()
		return 0, err
	}
	if n := appevent.ClampFuture(evs, received); n > 0 {
		s.m.TimeClamped.Add(float64(n))
	}
	if st.Unknown > 0 {
		s.m.UnknownKinds.Add(float64(st.Unknown))
	}
	for i := range evs {
		s.m.events(event.SourceApp, evs[i].Action).Inc()
	}
	if key != "" {
		return 0, s.pub.PublishOnce(r.Context(), key, event.SourceApp, evs)
	}
	return 0, s.pub.Publish(r.Context(), event.SourceApp, evs)
}

// maxIdempotencyKey bounds the Idempotency-Key header of POST /events.
const maxIdempotencyKey = 128

// idempotencyKey derives the dedupe key of a POST /events from its
// Idempotency-Key header (1 to 128 visible ASCII characters) and its body:
// a client sending the same body again under the same header value gets
// the same key, and a header value reused with another body does not
// suppress it. "" without the header.
func idempotencyKey(r *http.Request, body []byte) (string, error) {
	h := r.Header.Get("Idempotency-Key")
	if h == "" {
		return "", nil
	}
	if len(h) > maxIdempotencyKey {
		return "", fmt.Errorf("Idempotency-Key longer than %d characters", maxIdempotencyKey)
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] > '~' {
			return "", errors.New("Idempotency-Key must be visible ASCII characters (a UUID, say)")
		}
	}
	sum := sha256.New()
	sum.Write([]byte(h))
	sum.Write([]byte{0})
	sum.Write(body)
	return "k" + hex.EncodeToString(sum.Sum(nil)[:16]), nil
}

// authenticate checks the bearer token or the HMAC signature. For a valid
// signature it returns the MAC, which the replay cache now holds, and
// whether it covers the Idempotency-Key (v2).
func (s *Server) authenticate(r *http.Request, body []byte) (code int, sig string, keyed bool, err error) {
	if header := r.Header.Get("X-Vigil-Signature"); header != "" && len(s.cfg.EventsHMACSecret) > 0 {
		return s.checkSignature(header, r.Header.Get("Idempotency-Key"), body)
	}
	// The scheme is case-insensitive (RFC 9110 11.1).
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return http.StatusUnauthorized, "", false, errors.New("missing credentials: send Authorization: Bearer <token> or X-Vigil-Signature")
	}
	// Digests of equal length, every token compared: the time taken
	// tells neither a token's length nor which one matched.
	got := sha256.Sum256([]byte(token))
	match := 0
	for _, want := range s.eventsTokens {
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	if match == 1 {
		return 0, "", false, nil
	}
	return http.StatusUnauthorized, "", false, errors.New("invalid token")
}

// checkSignature verifies t=<unix>,v1=<hex> (HMAC over "<t>." + body) or
// t=<unix>,v2=<hex> (HMAC over "v2." + "<t>." + Idempotency-Key + "." +
// body, so the key cannot be dropped or changed, and no v2 text is ever a
// v1 text): fresh, correct, not replayed. v2 is checked when both are
// given.
func (s *Server) checkSignature(header, idemKey string, body []byte) (int, string, bool, error) {
	var ts, v1, v2 string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		case "v2":
			v2 = v
		}
	}
	refuse := func(msg string) (int, string, bool, error) {
		return http.StatusUnauthorized, "", false, errors.New(msg)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || v1 == "" && v2 == "" {
		return refuse("X-Vigil-Signature must be t=<unix seconds>,v2=<hex HMAC-SHA256> (or v1=)")
	}
	now := s.now()
	if d := now.Sub(time.Unix(unix, 0)); d > s.cfg.MaxSkew || d < -s.cfg.MaxSkew {
		return refuse("stale signature timestamp (check the clocks)")
	}
	mac := hmac.New(sha256.New, s.cfg.EventsHMACSecret)
	given, keyed := v1, v2 != ""
	if keyed {
		if idemKey == "" || strings.Contains(idemKey, ".") {
			// Without a '.' in the key, "v2.<t>.<key>.<body>" splits one
			// way only: no byte can move between the key and the body.
			return refuse("a v2 signature covers the Idempotency-Key: send one, without '.'")
		}
		given = v2
		mac.Write([]byte("v2."))
	}
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	if keyed {
		mac.Write([]byte(idemKey))
		mac.Write([]byte{'.'})
	}
	mac.Write(body)
	got, err := hex.DecodeString(given)
	if err != nil {
		return refuse("signature is not hex")
	}
	if !hmac.Equal(got, mac.Sum(nil)) {
		return refuse("invalid signature")
	}
	// Keyed by the MAC's bytes: hex in the other case is the same MAC.
	key := string(got)
	if !s.replay.firstSeen(key, now) {
		return refuse("replayed signature")
	}
	return 0, key, keyed, nil
}

// clientIP is the peer address, or for a trusted proxy the right-most
// address of X-Forwarded-For that is not itself a trusted proxy.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap().WithZone("")
	if !s.trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := parseHop(hops[i])
		if err != nil {
			break
		}
		ip = ip.Unmap().WithZone("")
		if !s.trusted(ip) {
			return ip
		}
	}
	return peer
}

// parseHop reads one X-Forwarded-For entry: an address, possibly quoted,
// with a port ("203.0.113.7:4711", "[2001:db8::7]:443") or in brackets, as
// some proxies write them.
func parseHop(hop string) (netip.Addr, error) {
	h := strings.Trim(strings.TrimSpace(hop), `"`)
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return netip.Addr{}, errors.New("unclosed [")
		}
		h = h[1:end]
	} else if strings.Count(h, ":") == 1 {
		h, _, _ = strings.Cut(h, ":")
	}
	return netip.ParseAddr(h)
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// anyOrigin is the header value allowing every origin; net/http does not
// modify header values, so responses share it.
var anyOrigin = []string{"*"}

// corsHeaders allows a cross-origin request from an allowed origin. A
// request without Origin is not a CORS request and gets none.
func (s *Server) corsHeaders(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			w.Header()["Access-Control-Allow-Origin"] = anyOrigin
			return
		}
		if strings.EqualFold(o, origin) {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin")
			return
		}
	}
}

// writeError writes {"error": msg, "field": field} with code.
func writeError(w http.ResponseWriter, code int, field, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	body := map[string]string{"error": msg}
	if field != "" {
		body["field"] = field
	}
	_ = json.NewEncoder(w).Encode(body)
	return code
}
