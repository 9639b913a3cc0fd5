package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
)

// Cluster is Vigil's view of an Elasticsearch cluster: the client, the
// resolved mode, and the index templates and write targets of one
// namespace. It is safe for concurrent use.
type Cluster struct {
	cfg Config
	es  *elasticsearch.Client
	log *slog.Logger

	mu   sync.Mutex
	mode string // ModeDataStream or ModeIndex once Setup resolved it; guarded by mu
}

// NewCluster returns a Cluster for cfg. It validates cfg and reads the CA
// file but does not talk to Elasticsearch; Setup does.
func NewCluster(cfg Config, logger *slog.Logger) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ca, err := cfg.readCACert()
	if err != nil {
		return nil, err
	}
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:              cfg.Addresses,
		APIKey:                 cfg.APIKey,
		Username:               cfg.Username,
		Password:               cfg.Password,
		CACert:                 ca,
		CertificateFingerprint: cfg.CertificateFingerprint,
		// Whole requests answered 429 or 50x are retried by the client;
		// per-document failures inside a bulk answer by the Indexer.
		RetryOnStatus: []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
		MaxRetries:    2,
		RetryBackoff:  func(attempt int) time.Duration { return min(100*time.Millisecond<<attempt, 2*time.Second) },
	})
	if err != nil {
		return nil, fmt.Errorf("creating Elasticsearch client: %w", err)
	}
	c := &Cluster{cfg: cfg, es: es, log: logger}
	if cfg.Mode != ModeAuto {
		c.mode = cfg.Mode
	}
	return c, nil
}

// Mode returns ModeDataStream or ModeIndex: the configured mode, or the one
// Setup detected in mode auto; "" before that.
func (c *Cluster) Mode() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode
}

// Namespace returns the namespace the cluster writes to.
func (c *Cluster) Namespace() string { return c.cfg.Namespace }

// Target returns the write target of kind in the cluster's namespace.
func (c *Cluster) Target(kind string) string { return Target(kind, c.cfg.Namespace) }

// esError is an error Elasticsearch answered with.
type esError struct {
	Status int
	Type   string
	Reason string
}

func (e *esError) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("Elasticsearch answered %d", e.Status)
	}
	return fmt.Sprintf("Elasticsearch answered %d: %s: %s", e.Status, e.Type, e.Reason)
}

// newESError decodes the error of a response body.
func newESError(status int, body []byte) *esError {
	e := &esError{Status: status}
	var r struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &r) == nil && len(r.Error) > 0 {
		var detail struct{ Type, Reason string }
		if json.Unmarshal(r.Error, &detail) == nil {
			e.Type, e.Reason = detail.Type, detail.Reason
		} else {
			_ = json.Unmarshal(r.Error, &e.Reason)
		}
	}
	return e
}

// do sends one request. A body of type []byte is sent as it is, anything
// else as JSON. It returns the status and body of any answer; err is set
// only when there was none.
func (c *Cluster) do(ctx context.Context, method, path string, body any, contentType string) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, r)
	if err != nil {
		return 0, nil, err
	}
	if r != nil {
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.es.Perform(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	return res.StatusCode, data, nil
}

// Setup installs or upgrades the index templates and, in index mode,
// creates each family's first index behind its write alias. It is
// idempotent and safe to run from several Vigil processes at once; in mode
// auto it also detects the mode. `vigil es setup` runs it alone, an Indexer
// at the start of Run.
func (c *Cluster) Setup(ctx context.Context) error {
	mode, err := c.resolveMode(ctx)
	if err != nil {
		return err
	}
	for _, kind := range Kinds {
		upgraded, err := c.ensureTemplate(ctx, kind, mode)
		if err != nil {
			return err
		}
		var created bool
		if mode == ModeIndex {
			created, err = c.ensureAlias(ctx, kind)
		} else {
			created, err = c.ensureDataStream(ctx, kind)
		}
		if err != nil {
			return err
		}
		if upgraded && !created {
			if err := c.upgradeWriteIndex(ctx, kind); err != nil {
				return err
			}
		}
	}
	c.mu.Lock()
	c.mode = mode
	c.mu.Unlock()
	c.log.Info("elasticsearch set up", "mode", mode, "namespace", c.cfg.Namespace, "template_version", TemplateVersion)
	return nil
}

// resolveMode returns the configured mode or, in mode auto, index mode if
// a Vigil alias of the namespace exists (a cluster that started in index
// mode stays there), else data streams if the cluster has them, else index
// mode.
func (c *Cluster) resolveMode(ctx context.Context) (string, error) {
	if c.cfg.Mode != ModeAuto {
		return c.cfg.Mode, nil
	}
	status, body, err := c.do(ctx, http.MethodGet, "/_alias/logs-vigil.*-"+c.cfg.Namespace, nil, "")
	if err != nil {
		return "", fmt.Errorf("detecting the Elasticsearch mode: %w", err)
	}
	if status == http.StatusOK && len(bytes.TrimSpace(body)) > 2 {
		return ModeIndex, nil
	}
	status, body, err = c.do(ctx, http.MethodGet, "/_data_stream?filter_path=data_streams.name", nil, "")
	if err != nil {
		return "", fmt.Errorf("detecting the Elasticsearch mode: %w", err)
	}
	switch {
	case status == http.StatusOK:
		return ModeDataStream, nil
	case status == http.StatusBadRequest || status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		// No data streams API: the request was read as an index name.
		return ModeIndex, nil
	default:
		return "", fmt.Errorf("detecting the Elasticsearch mode (set es_mode to skip it): GET /_data_stream: %w", newESError(status, body))
	}
}

// ensureTemplate installs kind's template unless one of this version and
// mode, or a newer one, is there. It reports whether it replaced an older
// template.
func (c *Cluster) ensureTemplate(ctx context.Context, kind, mode string) (upgraded bool, err error) {
	name := TemplateName(kind)
	status, body, err := c.do(ctx, http.MethodGet, "/_index_template/"+name, nil, "")
	if err != nil {
		return false, fmt.Errorf("reading index template %s: %w", name, err)
	}
	existed := false
	switch status {
	case http.StatusOK:
		var r struct {
			IndexTemplates []struct {
				IndexTemplate struct {
					Meta struct {
						Version int    `json:"version"`
						Mode    string `json:"mode"`
					} `json:"_meta"`
				} `json:"index_template"`
			} `json:"index_templates"`
		}
		if err := json.Unmarshal(body, &r); err != nil || len(r.IndexTemplates) != 1 {
			return false, fmt.Errorf("reading index template %s: unexpected answer %.200s", name, body)
		}
		meta := r.IndexTemplates[0].IndexTemplate.Meta
		if meta.Version > TemplateVersion {
			c.log.Warn("index template is newer than this Vigil's: leaving it", "template", name, "version", meta.Version, "ours", TemplateVersion)
			return false, nil
		}
		if meta.Version == TemplateVersion && meta.Mode == mode {
			return false, nil
		}
		existed = true
		c.log.Info("upgrading index template", "template", name, "from", meta.Version, "to", TemplateVersion, "mode", mode)
	case http.StatusNotFound:
	default:
		return false, fmt.Errorf("reading index template %s: %w", name, newESError(status, body))
	}
	status, body, err = c.do(ctx, http.MethodPut, "/_index_template/"+name, c.cfg.templateBody(kind, mode), "")
	if err != nil {
		return false, fmt.Errorf("installing index template %s: %w", name, err)
	}
	if status != http.StatusOK {
		return false, fmt.Errorf("installing index template %s: %w", name, newESError(status, body))
	}
	return existed, nil
}

// ensureAlias creates kind's first index with the write alias on it unless
// the alias exists. It reports whether it created the index.
func (c *Cluster) ensureAlias(ctx context.Context, kind string) (created bool, err error) {
	alias := c.Target(kind)
	status, body, err := c.do(ctx, http.MethodHead, "/_alias/"+alias, nil, "")
	if err != nil {
		return false, fmt.Errorf("looking up alias %s: %w", alias, err)
	}
	switch status {
	case http.StatusOK:
		return false, nil
	case http.StatusNotFound:
	default:
		return false, fmt.Errorf("looking up alias %s: %w", alias, newESError(status, body))
	}
	if status, _, err := c.do(ctx, http.MethodHead, "/"+alias, nil, ""); err == nil && status == http.StatusOK {
		return false, fmt.Errorf("%s exists and is not an alias (an index written before setup, or a data stream): "+
			"delete or reindex it, or use another es_namespace or es_mode", alias)
	}
	first := alias + "-000001"
	status, body, err = c.do(ctx, http.MethodPut, "/"+first, map[string]any{
		"aliases": map[string]any{alias: map[string]any{"is_write_index": true}},
	}, "")
	if err != nil {
		return false, fmt.Errorf("creating index %s: %w", first, err)
	}
	if status == http.StatusOK {
		c.log.Info("created index with write alias", "index", first, "alias", alias)
		return true, nil
	}
	e := newESError(status, body)
	if e.Type != "resource_already_exists_exception" {
		return false, fmt.Errorf("creating index %s: %w", first, e)
	}
	// Another process created it a moment ago, or the alias was removed
	// from it: point the alias at it (again).
	status, body, err = c.do(ctx, http.MethodPost, "/_aliases", map[string]any{
		"actions": []any{map[string]any{"add": map[string]any{"index": first, "alias": alias, "is_write_index": true}}},
	}, "")
	if err != nil {
		return false, fmt.Errorf("adding alias %s to %s: %w", alias, first, err)
	}
	if status != http.StatusOK {
		return false, fmt.Errorf("adding alias %s to %s: %w", alias, first, newESError(status, body))
	}
	return false, nil
}

// ensureDataStream creates kind's data stream unless it exists, so it can
// be searched (and its mapping read) before the first document. It reports
// whether it created it.
func (c *Cluster) ensureDataStream(ctx context.Context, kind string) (created bool, err error) {
	name := c.Target(kind)
	status, body, err := c.do(ctx, http.MethodPut, "/_data_stream/"+name, nil, "")
	if err != nil {
		return false, fmt.Errorf("creating data stream %s: %w", name, err)
	}
	if status == http.StatusOK {
		c.log.Info("created data stream", "data_stream", name)
		return true, nil
	}
	if e := newESError(status, body); e.Type != "resource_already_exists_exception" {
		return false, fmt.Errorf("creating data stream %s: %w", name, e)
	}
	return false, nil
}

// upgradeWriteIndex applies kind's new mappings to the current write index
// of its target; if they conflict with the old ones it rolls the target
// over, so the next index is made from the new template.
func (c *Cluster) upgradeWriteIndex(ctx context.Context, kind string) error {
	target := c.Target(kind)
	status, body, err := c.do(ctx, http.MethodPut, "/"+target+"/_mapping?write_index_only=true", mappings(kind), "")
	if err != nil {
		return fmt.Errorf("updating the mappings of %s: %w", target, err)
	}
	switch status {
	case http.StatusOK:
		c.log.Info("applied new mappings to the write index", "target", target)
		return nil
	case http.StatusNotFound:
		return nil // a data stream not written to yet
	}
	c.log.Warn("new mappings conflict with the write index: rolling over", "target", target, "err", newESError(status, body))
	status, body, err = c.do(ctx, http.MethodPost, "/"+target+"/_rollover", nil, "")
	if err != nil {
		return fmt.Errorf("rolling over %s after a template upgrade: %w", target, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("rolling over %s after a template upgrade: %w", target, newESError(status, body))
	}
	return nil
}

// RolloverResult is what Rollover did to one write target.
type RolloverResult struct {
	// Target is the alias or data stream.
	Target string `json:"target"`
	// OldIndex was the write index before; NewIndex is the one it would be
	// or was rolled over to.
	OldIndex string `json:"old_index"`
	NewIndex string `json:"new_index"`
	// RolledOver is true when a condition was met and NewIndex is now the
	// write index.
	RolledOver bool `json:"rolled_over"`
}

// Rollover replaces the write index of every target whose current one is
// older than RolloverMaxAge or has a primary shard larger than
// RolloverMaxSize; `vigil es rollover` calls it, and a running Indexer in
// index mode every RolloverCheck. Data streams are rolled over too (their
// lifecycle or ILM normally does it). A target that does not exist yet is
// skipped.
func (c *Cluster) Rollover(ctx context.Context) ([]RolloverResult, error) {
	body := map[string]any{"conditions": map[string]any{
		"max_age":                esDuration(c.cfg.RolloverMaxAge),
		"max_primary_shard_size": strings.ToLower(c.cfg.RolloverMaxSize),
	}}
	var out []RolloverResult
	var errs []error
	for _, kind := range Kinds {
		target := c.Target(kind)
		status, data, err := c.do(ctx, http.MethodPost, "/"+target+"/_rollover", body, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("rolling over %s: %w", target, err))
			continue
		}
		if status == http.StatusNotFound {
			continue
		}
		if status != http.StatusOK {
			errs = append(errs, fmt.Errorf("rolling over %s: %w", target, newESError(status, data)))
			continue
		}
		r := RolloverResult{Target: target}
		if err := json.Unmarshal(data, &r); err != nil {
			errs = append(errs, fmt.Errorf("rolling over %s: reading the answer: %w", target, err))
			continue
		}
		r.Target = target
		if r.RolledOver {
			c.log.Info("rolled over", "target", target, "old", r.OldIndex, "new", r.NewIndex)
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}
