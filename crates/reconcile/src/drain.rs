//! Graceful termination: a TCP real server that leaves with connections is
//! first given weight 0, so it gets no new connections, and deleted once its
//! active connections are gone or after a bounded time; one with no connection
//! at all is deleted at once, as kube-proxy's `GracefulDeleteRS` does. UDP and
//! SCTP real servers are deleted at once, as kube-proxy does (`IsRsGracefulTerminationNeeded` in its
//! `pkg/proxy/ipvs/util/ipvs.go`, used by `graceful_termination.go`): with
//! `expire_nodest_conn=1` the kernel ends their flows on the next packet.
//!
//! The state is mostly the kernel's own: a real server of ours with weight 0
//! that we do not want is draining. Only the moment we first saw it so is kept
//! here, which a restarted daemon rebuilds (the clock restarts, the drain goes on).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipvs::{DestinationEntry, Protocol, ServiceKey};

/// A real server of a virtual server.
pub type RealServerKey = (ServiceKey, IpAddr, u16);

/// When each draining real server started draining, and for how long it may.
#[derive(Debug, Clone)]
pub struct Draining {
    timeout: Duration,
    since: HashMap<RealServerKey, (Instant, Duration)>,
}

impl Draining {
    /// The default bound: a minute.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// Real servers are deleted at the latest `timeout` after draining started,
    /// unless their virtual server sets a bound of its own.
    pub fn new(timeout: Duration) -> Self {
        Draining {
            timeout,
            since: HashMap::new(),
        }
    }

    /// How many real servers are draining.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// Whether nothing is draining.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }

    /// The virtual servers that have real servers draining.
    pub fn services(&self) -> impl Iterator<Item = ServiceKey> + '_ {
        self.since.keys().map(|(service, _, _)| *service)
    }

    /// Records that `rs` is draining (if not already; with `timeout`, its
    /// virtual server's own bound, or the default) and tells whether it may be
    /// deleted now: no connections left, or its bound passed.
    pub(crate) fn may_delete(
        &mut self,
        rs: RealServerKey,
        entry: &DestinationEntry,
        timeout: Option<Duration>,
        now: Instant,
    ) -> bool {
        let (since, bound) = self.start(rs, timeout, now);
        drained(entry) || now.duration_since(since) >= bound
    }

    /// Starts the clock for a real server set to weight 0 (if not started),
    /// with `timeout`, its virtual server's own bound, or the default; returns
    /// when it started and its bound.
    pub(crate) fn start(
        &mut self,
        rs: RealServerKey,
        timeout: Option<Duration>,
        now: Instant,
    ) -> (Instant, Duration) {
        *self
            .since
            .entry(rs)
            .or_insert((now, timeout.unwrap_or(self.timeout)))
    }

    /// Forgets a real server (deleted).
    pub(crate) fn forget(&mut self, rs: RealServerKey) {
        self.since.remove(&rs);
    }

    /// Forgets every real server not in `alive` (gone, or wanted again).
    pub(crate) fn retain(&mut self, alive: impl Fn(&RealServerKey) -> bool) {
        self.since.retain(|k, _| alive(k));
    }
}

/// Whether a real server of this virtual server that leaves drains first
/// (TCP, and firewall-mark services, which kube-proxy never makes) or is deleted
/// at once (UDP, SCTP).
pub(crate) fn drains(service: ServiceKey) -> bool {
    !matches!(
        service,
        ServiceKey::Inet {
            protocol: Protocol::Udp | Protocol::Sctp,
            ..
        }
    )
}

/// Whether a draining real server has no active connections left (the
/// inactive ones are closing).
fn drained(entry: &DestinationEntry) -> bool {
    entry.active_connections == 0
}

/// Whether a real server has no connection at all, active or inactive: one that
/// leaves so is deleted at once (kube-proxy's `deleteRsFunc`, which
/// `GracefulDeleteRS` tries before it sets the weight to 0).
pub(crate) fn idle(entry: &DestinationEntry) -> bool {
    entry.active_connections == 0 && entry.inactive_connections == 0
}
