#!/usr/bin/env python3
"""Writes vigil.ndjson: Kibana saved objects (data views, saved searches,
visualizations and the "Vigil — security overview" dashboard) for the
indices Vigil writes. Run it after changing an object; the Go test in
dashboards/ checks every field an object references against the real
Elasticsearch mapping.

    python3 dashboards/kibana/generate.py
"""
import json, os

objs = []

def data_view(id, title, name):
    objs.append({"type": "index-pattern", "id": id, "attributes": {"title": title, "name": name, "timeFieldName": "@timestamp"},
                 "references": [], "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.0.0"})

data_view("vigil-events", "logs-vigil.access-*,logs-vigil.csp-*,logs-vigil.app-*", "Vigil events (access, CSP, app)")
data_view("vigil-access", "logs-vigil.access-*", "Vigil access logs")
data_view("vigil-csp", "logs-vigil.csp-*", "Vigil CSP reports")
data_view("vigil-app", "logs-vigil.app-*", "Vigil application events")
data_view("vigil-alerts", "logs-vigil.alerts-*", "Vigil alerts")
data_view("vigil-audit", "logs-vigil.audit-*", "Vigil audit trail")

def search_source(query="", filters=()):
    return json.dumps({"query": {"query": query, "language": "kuery"}, "filter": list(filters),
                       "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"})

def saved_search(id, title, view, columns, query="", sort_field="@timestamp"):
    objs.append({"type": "search", "id": id,
                 "attributes": {"title": title, "columns": columns, "sort": [[sort_field, "desc"]],
                                "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)}},
                 "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": view}],
                 "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.0.0"})

saved_search("vigil-alert-table", "Vigil — alerts", "vigil-alerts",
             ["rule", "severity", "key", "count", "allowlisted", "evidence"])
saved_search("vigil-audit-table", "Vigil — audit trail", "vigil-audit",
             ["action", "target", "result", "actor", "reason", "expires"])
saved_search("vigil-suspicious", "Vigil — SuspiciousOperation and token reuse", "vigil-app",
             ["event.action", "vigil.app.name", "source.ip", "user.name", "url.path", "message"],
             query='event.action : "suspicious-operation" or event.action : "token-reuse"')
saved_search("vigil-probes", "Vigil — scanner probes (requests refused before they were HTTP)", "vigil-access",
             ["event.action", "source.ip", "http.response.status_code", "user_agent.original", "message"],
             query='event.action : "tls-handshake" or event.action : "bad-request-line" or event.action : "no-request"')

def terms(id, field, size=10, schema="segment"):
    return {"id": id, "enabled": True, "type": "terms", "schema": schema,
            "params": {"field": field, "size": size, "order": "desc", "orderBy": "1"}}

def histogram(id="2", schema="segment"):
    return {"id": id, "enabled": True, "type": "date_histogram", "schema": schema,
            "params": {"field": "@timestamp", "interval": "auto", "min_doc_count": 1}}

COUNT = {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}

def vis(id, title, view, vistype, aggs, query="", params=None):
    state = {"title": title, "type": vistype, "aggs": aggs, "params": params or {}}
    objs.append({"type": "visualization", "id": id,
                 "attributes": {"title": title, "visState": json.dumps(state), "uiStateJSON": "{}", "description": "",
                                "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)}},
                 "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": view}],
                 "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.5.0"})

LINE = {"type": "line", "addLegend": True, "legendPosition": "right"}
BAR = {"type": "histogram", "addLegend": True, "legendPosition": "right"}
TABLE = {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False}

vis("vigil-events-per-source", "Events per source over time", "vigil-events", "line",
    [COUNT, histogram("2"), terms("3", "vigil.source", 5, "group")], params=LINE)
vis("vigil-top-404-scanners", "Top 404 scanners", "vigil-access", "table",
    [COUNT, terms("2", "source.ip", 20, "bucket"), terms("3", "user_agent.original", 1, "bucket")],
    query="http.response.status_code : 404", params=TABLE)
vis("vigil-csp-origins-per-page", "Top blocked CSP origins per page", "vigil-csp", "table",
    [COUNT, terms("2", "vigil.csp.document_uri", 10, "bucket"), terms("3", "vigil.csp.blocked_origin", 5, "bucket"),
     terms("4", "vigil.csp.effective_directive", 3, "bucket")], params=TABLE)
vis("vigil-auth-failures-user", "Auth failures per user", "vigil-app", "table",
    [COUNT, terms("2", "user.name", 20, "bucket")], query='event.action : "login-failed"', params=TABLE)
vis("vigil-auth-failures-ip", "Auth failures per client IP", "vigil-app", "table",
    [COUNT, terms("2", "source.ip", 20, "bucket")], query='event.action : "login-failed"', params=TABLE)
vis("vigil-bans-lockdowns", "Bans and lockdowns over time", "vigil-audit", "histogram",
    [COUNT, histogram("2"), terms("3", "action", 8, "group")],
    query='result : "applied" and (action : "ban" or action : "lockdown" or action : "lockdown_off" or action : "unban")', params=BAR)
vis("vigil-alerts-per-rule", "Alerts per rule over time", "vigil-alerts", "histogram",
    [COUNT, histogram("2"), terms("3", "rule", 20, "group")], params=BAR)
vis("vigil-status-codes", "Responses by status code", "vigil-access", "line",
    [COUNT, histogram("2"), terms("3", "http.response.status_code", 8, "group")], params=LINE)

panels, refs = [], []
layout = [
    ("vigil-events-per-source", "visualization", 0, 0, 24, 12),
    ("vigil-alerts-per-rule", "visualization", 24, 0, 24, 12),
    ("vigil-top-404-scanners", "visualization", 0, 12, 16, 15),
    ("vigil-csp-origins-per-page", "visualization", 16, 12, 32, 15),
    ("vigil-auth-failures-user", "visualization", 0, 27, 16, 13),
    ("vigil-auth-failures-ip", "visualization", 16, 27, 16, 13),
    ("vigil-bans-lockdowns", "visualization", 32, 27, 16, 13),
    ("vigil-status-codes", "visualization", 0, 40, 24, 12),
    ("vigil-suspicious", "search", 24, 40, 24, 12),
    ("vigil-alert-table", "search", 0, 52, 48, 15),
    ("vigil-audit-table", "search", 0, 67, 48, 15),
    ("vigil-probes", "search", 0, 82, 48, 12),
]
for i, (id, typ, x, y, w, h) in enumerate(layout):
    name = f"panel_{i}"
    panels.append({"version": "8.8.0", "type": typ, "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(i)},
                   "panelIndex": str(i), "embeddableConfig": {}, "panelRefName": name})
    refs.append({"name": name, "type": typ, "id": id})
objs.append({"type": "dashboard", "id": "vigil-security-overview",
             "attributes": {"title": "Vigil — security overview", "description": "Events, detections, CSP, authentication and responses.",
                            "panelsJSON": json.dumps(panels), "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
                            "timeRestore": True, "timeFrom": "now-24h", "timeTo": "now", "refreshInterval": {"pause": False, "value": 60000},
                            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})}},
             "references": refs, "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.7.0"})

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vigil.ndjson")
with open(out, "w") as f:
    for o in objs:
        f.write(json.dumps(o, ensure_ascii=False) + "\n")
print(f"wrote {len(objs)} objects to {out}")
