//! Health as kube-proxy reports it on `/healthz` and `/livez`.
//!
//! The proxy is unhealthy when a change has been waiting to be programmed for
//! longer than the health timeout (twice `syncPeriod`, as in kube-proxy): that
//! is, when syncs stopped or keep failing. `/healthz` is also unhealthy while
//! the node is being deleted (so load balancers drain it), and once the proxy
//! has gone the health timeout since it started without a first complete sync
//! (for example while the API server cannot be reached: the node has nothing
//! programmed, where kube-proxy would say 200 for as long as it is starting).
//! `/livez` ignores both, so the kubelet does not restart a proxy that works
//! or is still loading a large cluster.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What the health endpoints report, serialised as their JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Whether syncs keep up (the `/livez` verdict).
    pub healthy: bool,
    /// False while this node is being deleted or drained by the autoscaler.
    pub node_eligible: bool,
    /// When the last successful sync finished (RFC 3339), if any.
    pub last_updated: Option<String>,
    /// When this report was made (RFC 3339).
    pub current_time: String,
    /// Whether the proxy started longer than the health timeout ago and has never completed
    /// a sync (not in the body, which is kube-proxy's; `lastUpdated` is null then).
    #[serde(skip)]
    pub first_sync_overdue: bool,
}

impl Health {
    /// The `/healthz` verdict: healthy, eligible and synced at least once in time.
    pub fn ready(&self) -> bool {
        self.healthy && self.node_eligible && !self.first_sync_overdue
    }
}

#[derive(Debug)]
struct Inner {
    started: Option<SystemTime>,
    oldest_pending: Option<SystemTime>,
    last_updated: Option<SystemTime>,
    node_eligible: bool,
}

/// Shared health state: the sync loop records into it, the HTTP server reads.
#[derive(Debug, Clone)]
pub struct HealthState {
    timeout: Duration,
    inner: Arc<Mutex<Inner>>,
}

impl HealthState {
    /// A state whose pending changes turn unhealthy after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let inner = Inner {
            started: None,
            oldest_pending: None,
            last_updated: None,
            node_eligible: true,
        };
        HealthState {
            timeout,
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state stays consistent field by field even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The proxy started at `at`: `/healthz` fails if no sync completes within the timeout.
    pub fn started(&self, at: SystemTime) {
        self.lock().started = Some(at);
    }

    /// A change arrived that the next sync must program.
    pub fn queued(&self, at: SystemTime) {
        self.lock().oldest_pending.get_or_insert(at);
    }

    /// A sync finished and programmed everything queued before it started.
    pub fn updated(&self, at: SystemTime) {
        let mut inner = self.lock();
        inner.oldest_pending = None;
        inner.last_updated = Some(at);
    }

    /// Whether this node may receive external traffic (not being deleted).
    pub fn set_node_eligible(&self, eligible: bool) {
        self.lock().node_eligible = eligible;
    }

    /// The report at time `now`.
    pub fn health(&self, now: SystemTime) -> Health {
        let inner = self.lock();
        let late = |since: Option<SystemTime>| {
            since.is_some_and(|t| {
                now.duration_since(t)
                    .is_ok_and(|waited| waited > self.timeout)
            })
        };
        let stalled = late(inner.oldest_pending);
        let first_sync_overdue = inner.last_updated.is_none() && late(inner.started);
        Health {
            healthy: !stalled,
            node_eligible: inner.node_eligible,
            last_updated: inner
                .last_updated
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            current_time: humantime::format_rfc3339_millis(now).to_string(),
            first_sync_overdue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn healthy_with_nothing_pending_even_before_the_first_sync() {
        let state = HealthState::new(Duration::from_secs(60));
        let health = state.health(at(1000));
        assert!(health.healthy && health.ready());
        assert_eq!(health.last_updated, None);
    }

    #[test]
    fn healthz_fails_when_the_first_sync_is_overdue_and_livez_does_not() {
        let state = HealthState::new(Duration::from_secs(60));
        state.started(at(0));
        assert!(state.health(at(60)).ready(), "starting up, as kube-proxy");
        let overdue = state.health(at(61));
        assert!(!overdue.ready(), "never synced in time");
        assert!(overdue.healthy, "livez stays healthy");
        state.updated(at(90));
        assert!(state.health(at(91)).ready());
    }

    #[test]
    fn unhealthy_once_a_change_waits_longer_than_the_timeout() {
        let state = HealthState::new(Duration::from_secs(60));
        state.queued(at(0));
        state.queued(at(50)); // the oldest pending change counts
        assert!(state.health(at(60)).healthy);
        assert!(!state.health(at(61)).healthy);
        state.updated(at(62));
        let health = state.health(at(63));
        assert!(health.healthy);
        assert_eq!(
            health.last_updated.as_deref(),
            Some("2023-11-14T22:14:22.000Z")
        );
    }

    #[test]
    fn an_ineligible_node_fails_healthz_but_not_livez() {
        let state = HealthState::new(Duration::from_secs(60));
        state.set_node_eligible(false);
        let health = state.health(at(0));
        assert!(health.healthy, "livez stays healthy");
        assert!(!health.ready(), "healthz reports the node as not eligible");
    }

    #[test]
    fn serialises_like_kube_proxy() {
        let state = HealthState::new(Duration::from_secs(60));
        let json = serde_json::to_value(state.health(at(0))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"healthy": true, "nodeEligible": true, "lastUpdated": null,
                               "currentTime": "2023-11-14T22:13:20.000Z"})
        );
    }
}
