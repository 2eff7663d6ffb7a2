//! IPVS scheduling methods, and the per-Service annotation that overrides the global one.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The Service annotation that chooses the IPVS scheduler for that Service's virtual servers,
/// overriding `ipvs.scheduler` / `--ipvs-scheduler`. An unknown value falls back to the global
/// scheduler with a warning.
pub const SCHEDULER_ANNOTATION: &str = "kube-ipvs-proxy.io/ipvs-scheduler";

/// An IPVS scheduler, by the kernel module suffix (`ip_vs_<name>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// Round robin (kube-proxy's default).
    #[default]
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection.
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Maglev hashing; kube-proxy adds the `mh-port` flag so the source port is hashed too.
    Mh,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Weighted random twos choice.
    Twos,
}

impl Scheduler {
    const NAMES: [(&'static str, Scheduler); 14] = [
        ("rr", Scheduler::Rr),
        ("wrr", Scheduler::Wrr),
        ("lc", Scheduler::Lc),
        ("wlc", Scheduler::Wlc),
        ("lblc", Scheduler::Lblc),
        ("lblcr", Scheduler::Lblcr),
        ("dh", Scheduler::Dh),
        ("sh", Scheduler::Sh),
        ("sed", Scheduler::Sed),
        ("nq", Scheduler::Nq),
        ("mh", Scheduler::Mh),
        ("fo", Scheduler::Fo),
        ("ovf", Scheduler::Ovf),
        ("twos", Scheduler::Twos),
    ];

    /// The kernel's name for it (`rr`, `wlc`…).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("rr", |(n, _)| n)
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a name that is not an IPVS scheduler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown IPVS scheduler {0:?} (known: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos)"
)]
pub struct UnknownScheduler(pub String);

impl FromStr for Scheduler {
    type Err = UnknownScheduler;

    fn from_str(s: &str) -> Result<Scheduler, UnknownScheduler> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, sched)| *sched)
            .ok_or_else(|| UnknownScheduler(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (name, sched) in Scheduler::NAMES {
            assert_eq!(name.parse::<Scheduler>(), Ok(sched));
            assert_eq!(sched.name(), name);
        }
        assert!("RR".parse::<Scheduler>().is_err());
        assert!("".parse::<Scheduler>().is_err());
    }
}
