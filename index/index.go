// Package index writes what travels on the bus into Elasticsearch: events,
// alerts and audit entries, one index family per kind, named by Elastic's
// convention (logs-vigil.access-<namespace> …), with versioned index
// templates that map the ECS fields, so Kibana reads them without mapping
// work.
//
// Cluster installs the templates and the write targets (Setup) and rolls
// them over (Rollover); Indexer consumes the three streams with durable
// JetStream consumers and bulk-indexes them, acknowledging a message only
// once Elasticsearch accepted every document in it (Run).
//
// # Write targets
//
// Each family has one write target, its alias or data stream, named
// logs-vigil.<kind>-<namespace>:
//
//	logs-vigil.access-<ns>   access log events  (VIGIL_EVENTS vigil.events.access.*)
//	logs-vigil.csp-<ns>      CSP reports        (VIGIL_EVENTS vigil.events.csp.*)
//	logs-vigil.app-<ns>      application events (VIGIL_EVENTS vigil.events.app.*)
//	logs-vigil.alerts-<ns>   alerts             (VIGIL_ALERTS)
//	logs-vigil.audit-<ns>    audit entries      (VIGIL_AUDIT)
//
// In data stream mode (clusters with the data streams feature: the default
// distribution) the target is a data stream, created by Setup.
// In index mode (any Elasticsearch 8, including the integ-test distribution
// Vigil's tests run against) the target is a write alias over time-based
// indices <target>-000001, -000002 …: Setup creates the first, Rollover
// (`vigil es rollover`, and the Indexer every RolloverCheck) adds the next
// when the write index is older than RolloverMaxAge or larger than
// RolloverMaxSize. Mode "auto" picks data streams when the cluster has them
// and no Vigil alias of the namespace exists yet.
//
// # Templates
//
// One composable index template per family, named like the family without
// the namespace (logs-vigil.access …, see TemplateNames), matching
// logs-vigil.<kind>-*, priority 501: above the built-in logs-*-* template
// (priority 100), whose settings and mappings therefore do not apply. Each
// carries TemplateVersion in "version" and "_meta.version"; Setup installs a
// missing template, replaces an older one (and applies the new mappings to
// the current write index, rolling it over if they conflict), and leaves a
// newer one alone. Mappings use "dynamic": false: a field the template does
// not know is kept in _source but not indexed, so a new field on the bus
// never rejects a document (as "strict" would) and never grows the mapping
// (as dynamic mapping would); adding it to the template and bumping
// TemplateVersion makes it searchable from the next write index on.
//
// # Delivery
//
// At least once, nothing dropped: see Indexer. Documents Elasticsearch
// refuses for good (a mapping conflict, a line that is not JSON) go to the
// JetStream stream VIGIL_DEADLETTER, subjects vigil.deadletter.<kind>, one
// JSON DeadLetter per document with the error.
//
// # Metrics
//
//	vigil_index_documents_total{kind,result}  result: indexed, retried, deadletter
//	vigil_index_bulk_seconds                  histogram of bulk request durations
//	vigil_index_errors_total{kind}            documents not accepted on an attempt (refused or request failed)
package index

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vigil-soc/vigil/event"
)

// Kinds of documents; each has its own index family.
const (
	KindAccess = event.SourceAccess // access log events
	KindCSP    = event.SourceCSP    // CSP violation reports
	KindApp    = event.SourceApp    // application events
	KindAlerts = "alerts"           // detections (event.Alert)
	KindAudit  = "audit"            // audit entries (event.Audit)
)

// Kinds lists every kind, in the order Setup handles them.
var Kinds = []string{KindAccess, KindCSP, KindApp, KindAlerts, KindAudit}

// TemplateVersion is the version of the index templates and their
// mappings. Bump it whenever templateBody changes: Setup replaces templates
// with a lower version.
const TemplateVersion = 1

// templatePriority puts Vigil's templates above Elasticsearch's built-in
// logs-*-* template (priority 100) and below 1000, where users put their
// own overrides.
const templatePriority = 501

// Modes of Config.Mode.
const (
	ModeAuto       = "auto"       // data streams if the cluster has them, else index
	ModeDataStream = "datastream" // data streams
	ModeIndex      = "index"      // indices behind a write alias
)

// Dataset returns the data set of kind: "vigil.access" ….
func Dataset(kind string) string { return "vigil." + kind }

// TemplateName returns the name of the index template of kind, such as
// "logs-vigil.access".
func TemplateName(kind string) string { return "logs-" + Dataset(kind) }

// TemplateNames returns the names of Vigil's index templates, one per kind.
func TemplateNames() []string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = TemplateName(k)
	}
	return names
}

// Target returns the write target of kind in namespace: the alias (index
// mode) or data stream, such as "logs-vigil.access-default". Kibana data
// views read logs-vigil.<kind>-*.
func Target(kind, namespace string) string { return TemplateName(kind) + "-" + namespace }

// Config configures the Elasticsearch side of Vigil. The zero value plus
// Addresses is a working configuration for a local cluster without
// security.
type Config struct {
	// Addresses are the URLs of the cluster's nodes, such as
	// "https://es1.example.net:9200"; requests are spread over them.
	// Default ["http://127.0.0.1:9200"].
	Addresses []string `yaml:"addresses"`
	// APIKey is an Elasticsearch API key (the base64 "encoded" value
	// POST /_security/api_key returns), sent as "Authorization: ApiKey …".
	// It takes precedence over Username and Password. Prints as <secret>.
	// The key needs the cluster privileges manage_index_templates and
	// monitor, and on logs-vigil.*: create_doc, create_index,
	// view_index_metadata, manage (mappings, rollover) and auto_configure.
	APIKey string `yaml:"api_key"`
	// Username and Password authenticate with HTTP basic auth when APIKey
	// is empty. Password prints as <secret>.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// CACert is a PEM file of the certificate authorities that signed the
	// cluster's HTTP certificate (a default installation's
	// config/certs/http_ca.crt). Empty: the system's roots.
	CACert string `yaml:"ca_cert"`
	// CertificateFingerprint pins the cluster's CA certificate by its
	// SHA-256 fingerprint in hex, as Elasticsearch prints it on first
	// start; an alternative to CACert.
	CertificateFingerprint string `yaml:"certificate_fingerprint"`
	// Namespace separates deployments sharing a cluster ("prod",
	// "staging"): the last part of every write target. Lower case, no '-',
	// at most 100 bytes. Default "default".
	Namespace string `yaml:"namespace"`
	// Mode is "auto" (default), "datastream" or "index"; see the package
	// documentation.
	Mode string `yaml:"mode"`
	// ILMPolicy names an existing ILM policy to manage the backing indices
	// of data streams (settings index.lifecycle.name). Empty: the data
	// stream lifecycle rolls them over (Elasticsearch 8.14+ default
	// conditions) and DataRetention deletes old data. Index mode does not
	// use it: Vigil rolls over itself (Rollover).
	ILMPolicy string `yaml:"ilm_policy"`
	// DataRetention is how long a data stream keeps documents when no
	// ILMPolicy is set (data stream lifecycle data_retention). 0: forever.
	DataRetention time.Duration `yaml:"data_retention"`
	// RolloverMaxAge and RolloverMaxSize are the conditions of Rollover:
	// a write index older than RolloverMaxAge (default 24h) or with a
	// primary shard larger than RolloverMaxSize (default "50gb", an
	// Elasticsearch byte size) is replaced by a new one.
	RolloverMaxAge  time.Duration `yaml:"rollover_max_age"`
	RolloverMaxSize string        `yaml:"rollover_max_size"`
	// RolloverCheck is how often a running Indexer in index mode calls
	// Rollover. Default 10m; negative: never (roll over with
	// `vigil es rollover` from cron instead).
	RolloverCheck time.Duration `yaml:"rollover_check"`
	// Shards is the number of primary shards of each new index. Default 1.
	// Replicas auto-expand from 0 to 1 with the number of data nodes.
	Shards int `yaml:"shards"`

	// FlushBytes is the size of a bulk request at which it is sent.
	// Default 5 MiB.
	FlushBytes int `yaml:"flush_bytes"`
	// FlushInterval is the longest a document waits for its bulk request
	// to fill up. Default 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Workers is the number of bulk requests in flight at once. Default 2.
	Workers int `yaml:"workers"`
	// Timeout bounds one bulk request. Default 60s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxInFlight caps the messages of each stream delivered and not yet
	// acknowledged (the consumers' MaxAckPending): how much an Elasticsearch
	// slowdown holds in memory before JetStream stops delivering. An
	// events message holds up to 256 KiB of documents. Default 64.
	MaxInFlight int `yaml:"max_in_flight"`
	// Retries is how often a bulk request retries the documents that
	// failed with a retryable error (429, 5xx, connection) before the
	// message goes back to JetStream for a delayed redelivery. Default 3.
	Retries int `yaml:"retries"`
	// RetryDelay is the first delay of a redelivery; it doubles with every
	// delivery up to RetryMaxDelay. Defaults 1s and 1m.
	RetryDelay    time.Duration `yaml:"retry_delay"`
	RetryMaxDelay time.Duration `yaml:"retry_max_delay"`
	// DeadLetterMaxAge is how long VIGIL_DEADLETTER keeps documents
	// Elasticsearch refused. Default 30 days.
	DeadLetterMaxAge time.Duration `yaml:"deadletter_max_age"`
	// DeadLetterReplicas is the replica count of VIGIL_DEADLETTER in a
	// NATS cluster; set it like the bus streams' replicas. Default 1.
	DeadLetterReplicas int `yaml:"deadletter_replicas"`
}

// Defaults of Config.
const (
	DefaultAddress          = "http://127.0.0.1:9200"
	DefaultNamespace        = "default"
	DefaultRolloverMaxAge   = 24 * time.Hour
	DefaultRolloverMaxSize  = "50gb"
	DefaultRolloverCheck    = 10 * time.Minute
	DefaultFlushBytes       = 5 << 20
	DefaultFlushInterval    = time.Second
	DefaultWorkers          = 2
	DefaultTimeout          = time.Minute
	DefaultMaxInFlight      = 64
	DefaultRetries          = 3
	DefaultRetryDelay       = time.Second
	DefaultRetryMaxDelay    = time.Minute
	DefaultDeadLetterMaxAge = 30 * 24 * time.Hour
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if len(c.Addresses) == 0 {
		c.Addresses = []string{DefaultAddress}
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Mode == "" {
		c.Mode = ModeAuto
	}
	if c.RolloverMaxAge == 0 {
		c.RolloverMaxAge = DefaultRolloverMaxAge
	}
	if c.RolloverMaxSize == "" {
		c.RolloverMaxSize = DefaultRolloverMaxSize
	}
	if c.RolloverCheck == 0 {
		c.RolloverCheck = DefaultRolloverCheck
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.FlushBytes == 0 {
		c.FlushBytes = DefaultFlushBytes
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.RetryMaxDelay == 0 {
		c.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	return c
}

// namespaceRE is what a data stream namespace may be: lower case, no '-'
// and none of the characters index names forbid.
var namespaceRE = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.+]*$`)

// byteSizeRE is an Elasticsearch byte size such as "50gb".
var byteSizeRE = regexp.MustCompile(`^[0-9]+(b|kb|mb|gb|tb|pb)$`)

// Validate reports every bad field at once, each named as in the config
// file with an "es_" prefix ("es_namespace: ..."). It does no I/O.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("es_%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for i, a := range c.Addresses {
		if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
			bad("addresses", "[%d]: %q must start with http:// or https://", i, a)
		}
	}
	if c.Namespace != "" && (!namespaceRE.MatchString(c.Namespace) || len(c.Namespace) > 100) {
		bad("namespace", "%q must be lower case letters, digits, '_', '.' or '+', no '-', at most 100 bytes", c.Namespace)
	}
	if c.Mode != "" && !slices.Contains([]string{ModeAuto, ModeDataStream, ModeIndex}, c.Mode) {
		bad("mode", "must be auto, datastream or index, got %q", c.Mode)
	}
	if c.RolloverMaxSize != "" && !byteSizeRE.MatchString(strings.ToLower(c.RolloverMaxSize)) {
		bad("rollover_max_size", "%q is not a byte size such as 50gb", c.RolloverMaxSize)
	}
	for key, d := range map[string]time.Duration{
		"rollover_max_age": c.RolloverMaxAge, "flush_interval": c.FlushInterval, "timeout": c.Timeout,
		"retry_delay": c.RetryDelay, "retry_max_delay": c.RetryMaxDelay, "deadletter_max_age": c.DeadLetterMaxAge,
		"data_retention": c.DataRetention,
	} {
		if d < 0 {
			bad(key, "must be >= 0, got %s", d)
		}
	}
	for key, n := range map[string]int{
		"shards": c.Shards, "flush_bytes": c.FlushBytes, "workers": c.Workers,
		"max_in_flight": c.MaxInFlight, "retries": c.Retries, "deadletter_replicas": c.DeadLetterReplicas,
	} {
		if n < 0 {
			bad(key, "must be >= 0, got %d", n)
		}
	}
	if c.CACert != "" && c.CertificateFingerprint != "" {
		bad("certificate_fingerprint", "give ca_cert or certificate_fingerprint, not both")
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// Redacted returns c with its secrets replaced by "<secret>", for printing.
func (c Config) Redacted() Config {
	for _, s := range []*string{&c.APIKey, &c.Password} {
		if *s != "" {
			*s = "<secret>"
		}
	}
	return c
}

// readCACert reads the CA file, if any.
func (c Config) readCACert() ([]byte, error) {
	if c.CACert == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.CACert)
	if err != nil {
		return nil, fmt.Errorf("reading es_ca_cert: %w", err)
	}
	return b, nil
}
