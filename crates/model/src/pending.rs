//! What changed since the last sync began, as kube-proxy's change trackers
//! (`pkg/proxy/servicechangetracker.go`, `endpointschangetracker.go`) record it for the
//! `kubeproxy_sync_proxy_rules_*_changes_pending` gauges and
//! `kubeproxy_network_programming_duration_seconds`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use k8s_openapi::jiff::Timestamp;

use crate::{IpFamily, ObjectId};

/// The EndpointSlice annotation the EndpointSlice controller sets to the time of the
/// change (a Pod's or the Service's) that made it rewrite the slice.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// The changes a sync has not yet taken ([`crate::Model::take_pending`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// Services whose own object changed, appeared or disappeared (kube-proxy's
    /// `ServiceChangeTracker` items).
    pub services: BTreeSet<ObjectId>,
    /// EndpointSlice updates and deletions that changed what the proxy holds (kube-proxy's
    /// `EndpointChangesPending`: one per such event, however many touch one slice).
    pub endpoint_changes: u64,
    /// The last-change trigger times of the slices updated since, by Service and the
    /// slices' family (kube-proxy tracks each family apart): only times after the model was
    /// created (older ones say nothing about this proxy's latency), and none for a Service
    /// one of whose slices of that family was deleted since (kube-proxy drops them then: a
    /// deleted slice's annotation is the time of its last update).
    pub trigger_times: BTreeMap<(ObjectId, IpFamily), Vec<SystemTime>>,
}

/// Records [`Pending`] changes, from the moment it was created.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    started: SystemTime,
    pending: Pending,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            started: SystemTime::now(),
            pending: Pending::default(),
        }
    }
}

impl Tracker {
    pub(crate) fn pending(&self) -> &Pending {
        &self.pending
    }

    pub(crate) fn take(&mut self) -> Pending {
        std::mem::take(&mut self.pending)
    }

    /// A Service object changed.
    pub(crate) fn service(&mut self, id: &ObjectId) {
        self.pending.services.insert(id.clone());
    }

    /// A slice of `service` in `family` was created or updated, with its trigger time
    /// annotation.
    pub(crate) fn slice_updated(
        &mut self,
        service: &ObjectId,
        family: IpFamily,
        trigger: Option<SystemTime>,
    ) {
        self.pending.endpoint_changes += 1;
        if let Some(t) = trigger.filter(|t| *t > self.started) {
            self.pending
                .trigger_times
                .entry((service.clone(), family))
                .or_default()
                .push(t);
        }
    }

    /// A slice of `service` in `family` was deleted.
    pub(crate) fn slice_deleted(&mut self, service: &ObjectId, family: IpFamily) {
        self.pending.endpoint_changes += 1;
        self.pending
            .trigger_times
            .remove(&(service.clone(), family));
    }
}

/// The slice's [`LAST_CHANGE_TRIGGER_TIME`], when it holds an RFC 3339 time (kube-proxy
/// ignores a missing or malformed one).
pub(crate) fn trigger_time(annotations: Option<&BTreeMap<String, String>>) -> Option<SystemTime> {
    let value = annotations?.get(LAST_CHANGE_TRIGGER_TIME)?;
    match value.parse::<Timestamp>() {
        Ok(t) => Some(SystemTime::from(t)),
        Err(e) => {
            tracing::warn!(value = %value, error = %e, "ignoring a malformed {LAST_CHANGE_TRIGGER_TIME} annotation");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn annotated(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(LAST_CHANGE_TRIGGER_TIME.to_owned(), value.to_owned())])
    }

    #[test]
    fn reads_the_controllers_rfc3339_nano_time() {
        // The EndpointSlice controller writes time.RFC3339Nano in UTC.
        let t = trigger_time(Some(&annotated("2026-12-04T23:50:01.25Z"))).expect("parsed");
        let since_epoch = t.duration_since(SystemTime::UNIX_EPOCH).expect("after");
        assert_eq!(since_epoch, Duration::new(1_796_428_201, 250_000_000));
        assert_eq!(trigger_time(Some(&annotated("yesterday"))), None);
        assert_eq!(trigger_time(None), None);
    }

    #[test]
    fn keeps_only_times_after_it_started_and_drops_them_when_a_slice_goes() {
        let mut tracker = Tracker::default();
        let svc = ObjectId::new("d", "web");
        let (v4, v6) = ((svc.clone(), IpFamily::V4), (svc.clone(), IpFamily::V6));
        let before = tracker.started - Duration::from_secs(60);
        let after = tracker.started + Duration::from_secs(1);
        tracker.slice_updated(&svc, IpFamily::V4, Some(before));
        tracker.slice_updated(&svc, IpFamily::V4, None);
        assert!(tracker.pending().trigger_times.is_empty());
        tracker.slice_updated(&svc, IpFamily::V4, Some(after));
        tracker.slice_updated(&svc, IpFamily::V6, Some(after));
        assert_eq!(tracker.pending().trigger_times[&v4], vec![after]);
        tracker.slice_deleted(&svc, IpFamily::V4);
        assert_eq!(
            tracker.pending().trigger_times.keys().collect::<Vec<_>>(),
            [&v6]
        );
        assert_eq!(tracker.take().endpoint_changes, 5);
        assert_eq!(tracker.pending(), &Pending::default());
    }
}
