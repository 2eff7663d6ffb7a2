//! The Grafana dashboard (`docs/dashboards/kube-ipvs-proxy.json`) asks only for
//! metrics the daemon exports: every PromQL expression in it (panel targets
//! and template variables) is parsed for the metric names it selects, and each
//! must be a series name the daemon's registry encodes once each of its
//! metrics has a series (IPVS statistics per backend included).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::ipvs_stats::IpvsStatsCollector;
use crate::ipvs_stats::tests::{backend, web};
use crate::{Code, IpFamily, Metrics, Mode, NoLocal};
use dataplane::ProxyMode;

const DASHBOARD: &str = include_str!("../../../docs/dashboards/kube-ipvs-proxy.json");

/// PromQL words that are not metric names when not followed by `(`: binary
/// operators and modifiers, and the aggregations, which may be followed by
/// `by (...)` before their `(`.
const KEYWORDS: [&str; 24] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "group_left",
    "group_right",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "atan2",
];

/// Words followed by a parenthesised list of label names.
const GROUPINGS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The series names the daemon's `/metrics` can show, in either proxy mode (each registers
/// its own set, as kube-proxy's `RegisterMetrics(mode)`): from each `# TYPE` line, the names
/// its samples take in the text format.
fn exported() -> BTreeSet<String> {
    [ProxyMode::Ipvs, ProxyMode::Iptables]
        .into_iter()
        .flat_map(|mode| type_lines(&mode_metrics(mode)))
        .collect()
}

/// The metrics of `mode`, with a series in each family that shows only once it has one, and
/// in IPVS mode the statistics of one Service with one backend.
fn mode_metrics(mode: ProxyMode) -> Metrics {
    let metrics = match mode {
        ProxyMode::Ipvs => {
            let stats = IpvsStatsCollector::reading(Box::new(|_| Ok(vec![web(vec![backend()])])));
            Metrics::for_mode(mode).with_collector(Box::new(Arc::new(stats)))
        }
        ProxyMode::Iptables => Metrics::for_mode(mode),
    };
    for family in [&metrics.healthz, &metrics.livez] {
        family.get_or_create(&Code { code: "200".into() }).inc();
    }
    for family in [
        &metrics.ops_applied,
        &metrics.drift_repaired,
        &metrics.sync_errors,
        &metrics.invalid_objects,
    ] {
        Metrics::count(family, "virtual_server", 1);
    }
    let current = Mode {
        mode: mode.as_str().into(),
    };
    metrics.proxy_mode.get_or_create(&current).set(1);
    let v4 = IpFamily::from(model::IpFamily::V4);
    for family in [
        &metrics.sync_duration,
        &metrics.sync_full_duration,
        &metrics.sync_partial_duration,
        &metrics.network_programming,
    ] {
        family.get_or_create(&v4).observe(0.1);
    }
    for family in [&metrics.last_sync, &metrics.last_queued] {
        family.get_or_create(&v4).set(1.0);
    }
    for family in [&metrics.restore_failures, &metrics.partial_restore_failures] {
        family.get_or_create(&v4).inc();
    }
    let no_local = NoLocal {
        traffic_policy: "internal".into(),
        ip_family: v4.ip_family.clone(),
    };
    metrics.no_local_endpoints.get_or_create(&no_local).set(1);
    metrics
}

/// The sample names of every `# TYPE` line `metrics` encodes.
fn type_lines(metrics: &Metrics) -> Vec<String> {
    metrics
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .flat_map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE name kind");
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            suffixes.iter().map(move |s| format!("{name}{s}"))
        })
        .collect()
}

/// Skips from `chars[i]`, an opening `open`, past its matching `close`
/// (string literals inside skipped whole); returns the index after it.
fn skip_group(chars: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' => i = skip_string(chars, i) - 1,
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced {open} in {}", chars.iter().collect::<String>());
}

/// Skips a string literal starting at `chars[i]`; returns the index after it.
fn skip_string(chars: &[char], i: usize) -> usize {
    let quote = chars[i];
    let mut j = i + 1;
    while j < chars.len() && chars[j] != quote {
        j += if chars[j] == '\\' { 2 } else { 1 };
    }
    j + 1
}

/// The metric names a PromQL expression selects: identifiers that are not
/// functions, keywords, label names (in matchers and groupings), durations,
/// numbers or Grafana variables (`$name`, `${name}`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_group(&chars, i, '{', '}');
        } else if c == '[' {
            i = skip_group(&chars, i, '[', ']');
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(&chars, i, '{', '}');
            }
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if ident(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if call && GROUPINGS.contains(&word.as_str()) {
                i = skip_group(&chars, next, '(', ')');
            } else if !call && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The PromQL of a template variable's query: `label_values(EXPR, label)`
/// selects from EXPR.
fn variable_expr(query: &str) -> Option<&str> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    Some(inner.rsplit_once(',').map_or(inner, |(expr, _)| expr))
}

/// Every PromQL expression of the dashboard, with where it is.
fn expressions(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut panels: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target's expr");
            found.push((format!("panel {:?}", panel["title"]), expr.to_owned()));
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if var["type"] == "query" {
            let query = var["query"]["query"].as_str().expect("a variable's query");
            let expr = variable_expr(query).unwrap_or(query);
            found.push((format!("variable {:?}", var["name"]), expr.to_owned()));
        }
    }
    found
}

#[test]
fn every_query_of_the_dashboard_names_a_metric_the_daemon_exports() {
    let exported = exported();
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let expressions = expressions(&dashboard);
    assert!(expressions.len() > 20, "{expressions:?}");
    let mut used = BTreeSet::new();
    for (place, expr) in &expressions {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{place}: no metric in {expr:?}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{place}: {name} (in {expr:?}) is not exported; the daemon exports {exported:?}"
            );
            used.insert(name);
        }
    }
    // The IPVS statistics and kube-proxy's sync metrics are what it is built on.
    for name in [
        "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
        "kube_ipvs_proxy_service_connections_total",
        "kube_ipvs_proxy_backend_active_connections",
    ] {
        assert!(used.contains(name), "the dashboard does not show {name}");
    }
}

#[test]
fn metric_names_skip_functions_labels_durations_and_variables() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket{x=~\"$v\", y!=\"b{c\"}[$__rate_interval]))) \
         / on(instance) group_left b_total offset 5m and time() - c",
    );
    let expected: BTreeSet<String> = ["a_bucket", "b_total", "c"].map(String::from).into();
    assert_eq!(names, expected);
    assert_eq!(
        variable_expr("label_values(m{n=~\"$n\"}, service)"),
        Some("m{n=~\"$n\"}")
    );
}
