//! kube-proxy's change-tracking metrics, from the source's events and the model's record of
//! pending changes: the `*_changes_total` counters (every add, update and delete event),
//! the `*_changes_pending` gauges, `kubeproxy_network_programming_duration_seconds` and
//! `kubeproxy_sync_proxy_rules_no_local_endpoints_total`.

use std::collections::BTreeSet;
use std::time::SystemTime;

use desired::no_local::{NoLocal, TrafficPolicy};
use model::{IpFamily, Object, ObjectId, Pending, SourceEvent};

use crate::{self as metrics, Metrics};
use dataplane::ProxyMode;

/// Counts the Service and EndpointSlice events of a batch, as kube-proxy's informer
/// handlers call its change trackers: once per object added, updated or deleted (a listing
/// delivers each of its objects as an add or update); EndpointSlices only of the address
/// types kube-proxy handles (`IPv4`, `IPv6`; not `FQDN`).
pub fn count_events(metrics: &Metrics, events: &[SourceEvent]) {
    for event in events {
        let objects = match event {
            SourceEvent::Applied(o) | SourceEvent::Deleted(o) => std::slice::from_ref(o),
            SourceEvent::Listed(_, objects) => objects.as_slice(),
            SourceEvent::Relisting(_) | SourceEvent::Relisted(_) | SourceEvent::Undecodable(_) => {
                continue;
            }
        };
        for object in objects {
            match object {
                Object::Service(_) => metrics.service_changes.inc(),
                Object::EndpointSlice(s) if matches!(s.address_type.as_str(), "IPv4" | "IPv6") => {
                    metrics.endpoint_changes.inc()
                }
                Object::EndpointSlice(_) | Object::Node(_) => 0,
            };
        }
    }
}

/// Sets the pending gauges to what the model holds: after events, and to zero when a sync
/// takes them.
pub fn pending(metrics: &Metrics, pending: &Pending) {
    metrics
        .service_changes_pending
        .set(pending.services.len() as i64);
    metrics
        .endpoint_changes_pending
        .set(pending.endpoint_changes as i64);
}

/// After a sync that programmed `taken` completely: observes, for every trigger time of a
/// slice in a family the node proxies, the time from it to `now` (negative when the
/// controller's clock is ahead, as kube-proxy's `time.Since`).
pub fn programmed(metrics: &Metrics, taken: &Pending, families: &[IpFamily], now: SystemTime) {
    for ((_, family), times) in &taken.trigger_times {
        if !families.contains(family) {
            continue;
        }
        let histogram = metrics
            .network_programming
            .get_or_create(&metrics::IpFamily::from(*family));
        for t in times {
            let seconds = match now.duration_since(*t) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            histogram.observe(seconds);
        }
    }
}

/// Sets `no_local_endpoints_total` for every family the node proxies and both policies:
/// the Services found (IPVS mode, kube-proxy's sets of Service names) or the Service ports
/// (iptables mode, its per-port counters).
pub fn no_local(metrics: &Metrics, mode: ProxyMode, found: &[NoLocal], families: &[IpFamily]) {
    for family in families {
        for policy in TrafficPolicy::ALL {
            let matching = found
                .iter()
                .filter(|n| n.family == *family && n.policy == policy);
            let count = match mode {
                ProxyMode::Ipvs => matching
                    .map(|n| &n.service)
                    .collect::<BTreeSet<&ObjectId>>()
                    .len(),
                ProxyMode::Iptables => matching.count(),
            };
            metrics
                .no_local_endpoints
                .get_or_create(&metrics::NoLocal {
                    traffic_policy: policy.as_str().into(),
                    ip_family: family.to_string(),
                })
                .set(count as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use model::{Kind, Model, Object, ProxyFilter};
    use serde_json::json;

    fn slice(trigger: &str) -> Object {
        Object::EndpointSlice(Box::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web-1", "namespace": "d",
                             "labels": {"kubernetes.io/service-name": "web"},
                             "annotations": {model::LAST_CHANGE_TRIGGER_TIME: trigger}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.1.5"]}],
            }))
            .expect("slice"),
        ))
    }

    fn line<'t>(text: &'t str, start: &str) -> &'t str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start} in:\n{text}"))
    }

    #[test]
    fn network_programming_is_observed_from_the_slices_trigger_time() {
        let mut model = Model::new(ProxyFilter::default(), None);
        // The controller's time: a second after the model began, in its RFC 3339 format.
        let trigger = SystemTime::now() + Duration::from_secs(1);
        let stamp = humantime::format_rfc3339_nanos(trigger).to_string();
        model.apply(SourceEvent::Applied(slice(&stamp)));
        let metrics = Metrics::for_mode(ProxyMode::Ipvs);
        let taken = model.take_pending();
        let now = trigger + Duration::from_millis(2500);
        programmed(&metrics, &taken, &[IpFamily::V4], now);
        let text = metrics.encode();
        let h = "kubeproxy_network_programming_duration_seconds";
        assert_eq!(
            line(&text, &format!("{h}_sum{{ip_family=\"IPv4\"}}")),
            format!("{h}_sum{{ip_family=\"IPv4\"}} 2.5")
        );
        assert!(
            line(
                &text,
                &format!("{h}_bucket{{le=\"2.0\",ip_family=\"IPv4\"}}")
            )
            .ends_with(" 0")
        );
        assert!(
            line(
                &text,
                &format!("{h}_bucket{{le=\"3.0\",ip_family=\"IPv4\"}}")
            )
            .ends_with(" 1")
        );
        // A family the node does not proxy observes nothing.
        let metrics = Metrics::for_mode(ProxyMode::Ipvs);
        programmed(&metrics, &taken, &[IpFamily::V6], now);
        assert!(!metrics.encode().contains(&format!("{h}_count{{")));
    }

    #[test]
    fn events_count_once_each_and_pending_follows_the_model() {
        let metrics = Metrics::for_mode(ProxyMode::Ipvs);
        let mut fqdn = slice("2000-01-01T00:00:00Z");
        if let Object::EndpointSlice(s) = &mut fqdn {
            s.address_type = "FQDN".into();
            s.metadata.name = Some("web-fqdn".into());
        }
        let events = vec![
            SourceEvent::Applied(slice("2000-01-01T00:00:00Z")),
            SourceEvent::Applied(slice("2000-01-01T00:00:00Z")),
            SourceEvent::Deleted(fqdn),
            SourceEvent::Listed(Kind::Service, Vec::new()),
            SourceEvent::Relisted(Kind::EndpointSlice),
        ];
        count_events(&metrics, &events);
        let mut model = Model::new(ProxyFilter::default(), None);
        for event in events {
            model.apply(event);
        }
        pending(&metrics, model.pending());
        let text = metrics.encode();
        // kube-proxy counts every event (of an IPv4 or IPv6 slice), pending only what
        // changed: the second, identical update of the slice is no change.
        for expected in [
            "kubeproxy_sync_proxy_rules_endpoint_changes_total 2",
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending 1",
            "kubeproxy_sync_proxy_rules_service_changes_total 0",
            "kubeproxy_sync_proxy_rules_service_changes_pending 0",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "no {expected:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn no_local_counts_services_in_ipvs_mode_and_ports_in_iptables_mode() {
        let port = |name: &str, port: &str, policy| NoLocal {
            service: ObjectId::new("d", name),
            port: port.into(),
            family: IpFamily::V4,
            policy,
        };
        let found = [
            port("a", "http", TrafficPolicy::Internal),
            port("a", "https", TrafficPolicy::Internal),
            port("b", "dns", TrafficPolicy::External),
        ];
        for (mode, internal) in [(ProxyMode::Ipvs, 1), (ProxyMode::Iptables, 2)] {
            let metrics = Metrics::for_mode(mode);
            no_local(&metrics, mode, &found, &[IpFamily::V4, IpFamily::V6]);
            let text = metrics.encode();
            let name = "kubeproxy_sync_proxy_rules_no_local_endpoints_total";
            for (policy, family, n) in [
                ("internal", "IPv4", internal),
                ("external", "IPv4", 1),
                ("internal", "IPv6", 0),
                ("external", "IPv6", 0),
            ] {
                let expected =
                    format!("{name}{{traffic_policy=\"{policy}\",ip_family=\"{family}\"}} {n}");
                assert!(
                    text.lines().any(|l| l == expected),
                    "{mode:?}: no {expected:?}"
                );
            }
        }
    }
}
