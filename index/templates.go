package index

import (
	"encoding/json"
	"strconv"
	"time"
)

// Field mappings. Only core field types: the integ-test distribution
// Vigil's tests run against has no mapper-extras or x-pack mapper modules,
// so no match_only_text, wildcard or constant_keyword (which ECS would use
// for message, url.original and data_stream.*).
type props = map[string]any

// keyword is a keyword field. ignore_above 1024 (ECS's value) keeps a
// hostile long value from being indexed (it stays in _source) instead of
// rejecting the document.
func keyword() props { return props{"type": "keyword", "ignore_above": 1024} }

// longKeyword is a keyword for values that can be long (URLs, user
// agents, policies), with a .text multi-field for full-text search. 8191
// characters stay under Lucene's 32766-byte term limit in UTF-8.
func longKeyword() props {
	return props{"type": "keyword", "ignore_above": 8191, "fields": props{"text": props{"type": "text"}}}
}

func text() props    { return props{"type": "text"} }
func long() props    { return props{"type": "long"} }
func date() props    { return props{"type": "date"} }
func ip() props      { return props{"type": "ip"} }
func boolean() props { return props{"type": "boolean"} }
func object(p props) props {
	return props{"properties": p}
}

// eventProperties maps the fields event.Event.AppendJSON writes (ECS names
// and the vigil.* namespace), plus ECS fields collectors may add later.
func eventProperties() props {
	return props{
		"@timestamp": date(),
		"message":    text(),
		"tags":       keyword(),
		"event": object(props{
			"kind":     keyword(),
			"category": keyword(),
			"type":     keyword(),
			"id":       keyword(),
			"dataset":  keyword(),
			"action":   keyword(),
			"outcome":  keyword(),
			"ingested": date(),
		}),
		"source": object(props{"ip": ip(), "port": long()}),
		"client": object(props{"ip": ip()}),
		"related": object(props{
			"ip":   ip(),
			"user": keyword(),
		}),
		"http": object(props{
			"request": object(props{
				"method":   keyword(),
				"referrer": longKeyword(),
				"id":       keyword(),
				"bytes":    long(),
			}),
			"response": object(props{
				"status_code": long(),
				"bytes":       long(),
				"body":        object(props{"bytes": long()}),
			}),
			"version": keyword(),
		}),
		"url": object(props{
			"original": longKeyword(),
			"path":     longKeyword(),
			"query":    props{"type": "keyword", "ignore_above": 8191},
			"domain":   keyword(),
			"scheme":   keyword(),
			"full":     longKeyword(),
		}),
		"user_agent": object(props{
			"original": longKeyword(),
			"name":     keyword(),
			"version":  keyword(),
		}),
		"user": object(props{
			"name": props{"type": "keyword", "ignore_above": 1024, "fields": props{"text": props{"type": "text"}}},
			"id":   keyword(),
		}),
		"vigil": object(props{
			"source": keyword(),
			"app":    object(props{"name": keyword()}),
			"token":  object(props{"jti": keyword()}),
			"csp": object(props{
				"document_uri":        longKeyword(),
				"blocked_uri":         longKeyword(),
				"blocked_origin":      keyword(),
				"effective_directive": keyword(),
				"violated_directive":  keyword(),
				"original_policy":     longKeyword(),
				"disposition":         keyword(),
				"sample":              keyword(),
				"source_file":         longKeyword(),
				"line_number":         long(),
				"column_number":       long(),
				"status_code":         long(),
				"report_format":       keyword(),
				"age_ms":              long(),
			}),
		}),
	}
}

// alertProperties maps event.Alert as it travels on VIGIL_ALERTS, plus
// @timestamp (= at), which the indexer adds.
func alertProperties() props {
	return props{
		"@timestamp":  date(),
		"id":          keyword(),
		"rule":        keyword(),
		"description": props{"type": "keyword", "ignore_above": 1024, "fields": props{"text": props{"type": "text"}}},
		"severity":    keyword(),
		"key_field":   keyword(),
		"key":         keyword(),
		"at":          date(),
		"first_seen":  date(),
		"window":      keyword(),
		"count":       long(),
		"allowlisted": boolean(),
		"actions": object(props{
			"kind":     keyword(),
			"duration": keyword(),
			"mode":     keyword(),
		}),
		"evidence": longKeyword(),
		"user_id":  keyword(),
		"source":   keyword(),
	}
}

// auditProperties maps event.Audit as it travels on VIGIL_AUDIT.
func auditProperties() props {
	return props{
		"@timestamp": date(),
		"id":         keyword(),
		"action":     keyword(),
		"target":     keyword(),
		"actor":      keyword(),
		"reason":     props{"type": "keyword", "ignore_above": 1024, "fields": props{"text": props{"type": "text"}}},
		"alert_id":   keyword(),
		"result":     keyword(),
		"duration":   keyword(),
		"expires":    date(),
		"offence":    long(),
		"error":      props{"type": "keyword", "ignore_above": 1024, "fields": props{"text": props{"type": "text"}}},
	}
}

// Mapping returns the mappings of kind's template as JSON: what
// PUT /<index>/_mapping would take. It returns nil for an unknown kind.
func Mapping(kind string) json.RawMessage {
	m := mappings(kind)
	if m == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	return b
}

// mappings returns the mappings object of kind, or nil.
func mappings(kind string) props {
	var p props
	switch kind {
	case KindAccess, KindCSP, KindApp:
		p = eventProperties()
	case KindAlerts:
		p = alertProperties()
	case KindAudit:
		p = auditProperties()
	default:
		return nil
	}
	return props{
		"dynamic":           false,
		"date_detection":    false,
		"numeric_detection": false,
		"_meta":             props{"managed_by": "vigil", "version": TemplateVersion},
		"properties":        p,
	}
}

// templateBody returns the composable index template of kind for mode
// (ModeDataStream or ModeIndex).
func (c Config) templateBody(kind, mode string) props {
	settings := props{
		"number_of_shards":     c.Shards,
		"auto_expand_replicas": "0-1",
	}
	tmpl := props{
		"settings": settings,
		"mappings": mappings(kind),
	}
	body := props{
		"index_patterns": []string{TemplateName(kind) + "-*"},
		"priority":       templatePriority,
		"version":        TemplateVersion,
		"_meta": props{
			"managed_by":  "vigil",
			"description": "Vigil " + kind + " documents",
			"version":     TemplateVersion,
			"mode":        mode,
		},
		"template": tmpl,
	}
	if mode == ModeDataStream {
		body["data_stream"] = props{}
		if c.ILMPolicy != "" {
			settings["index.lifecycle.name"] = c.ILMPolicy
		} else {
			lc := props{"enabled": true}
			if c.DataRetention > 0 {
				lc["data_retention"] = esDuration(c.DataRetention)
			}
			tmpl["lifecycle"] = lc
		}
	}
	return body
}

// esDuration writes d in Elasticsearch's time units, whole seconds.
func esDuration(d time.Duration) string {
	s := int64(d / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10) + "s"
}
