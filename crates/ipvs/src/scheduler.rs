//! Scheduler names (`IPVS_SVC_ATTR_SCHED_NAME`).

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest scheduler or persistence-engine name the kernel accepts, in
/// bytes without the NUL (`IP_VS_SCHEDNAME_MAXLEN` - 1).
pub const MAX_NAME_LEN: usize = 15;

/// A scheduling algorithm. The kernel loads the module `ip_vs_<name>` on
/// first use.
///
/// Displays as and parses from the kernel's name; unknown names are kept in
/// [`Scheduler::Other`] so that a scheduler from a newer kernel round-trips.
///
/// # Examples
/// ```
/// use ipvs::Scheduler;
/// assert_eq!("wlc".parse::<Scheduler>().unwrap(), Scheduler::WeightedLeastConnection);
/// assert_eq!(Scheduler::Maglev.to_string(), "mh");
/// assert_eq!("foo".parse::<Scheduler>().unwrap(), Scheduler::Other("foo".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Scheduler {
    /// `rr`: round robin.
    RoundRobin,
    /// `wrr`: weighted round robin.
    WeightedRoundRobin,
    /// `lc`: least connection.
    LeastConnection,
    /// `wlc`: weighted least connection (ipvsadm's default).
    WeightedLeastConnection,
    /// `lblc`: locality-based least connection.
    LocalityBasedLeastConnection,
    /// `lblcr`: locality-based least connection with replication.
    LocalityBasedLeastConnectionReplication,
    /// `dh`: destination hashing.
    DestinationHashing,
    /// `sh`: source hashing (flags [`ServiceFlags::SH_FALLBACK`](crate::ServiceFlags::SH_FALLBACK),
    /// [`ServiceFlags::SH_PORT`](crate::ServiceFlags::SH_PORT)).
    SourceHashing,
    /// `sed`: shortest expected delay.
    ShortestExpectedDelay,
    /// `nq`: never queue.
    NeverQueue,
    /// `fo`: weighted failover.
    WeightedFailover,
    /// `ovf`: weighted overflow.
    WeightedOverflow,
    /// `mh`: Maglev hashing (flags [`ServiceFlags::MH_FALLBACK`](crate::ServiceFlags::MH_FALLBACK),
    /// [`ServiceFlags::MH_PORT`](crate::ServiceFlags::MH_PORT)).
    Maglev,
    /// `twos`: weighted random twos choice.
    TwoChoice,
    /// Any other name, e.g. `none` (the kernel's name for a service without
    /// a scheduler) or an out-of-tree scheduler.
    Other(String),
}

/// Every scheduler this crate names, in the kernel's order.
const KNOWN: [(Scheduler, &str); 14] = [
    (Scheduler::RoundRobin, "rr"),
    (Scheduler::WeightedRoundRobin, "wrr"),
    (Scheduler::LeastConnection, "lc"),
    (Scheduler::WeightedLeastConnection, "wlc"),
    (Scheduler::LocalityBasedLeastConnection, "lblc"),
    (Scheduler::LocalityBasedLeastConnectionReplication, "lblcr"),
    (Scheduler::DestinationHashing, "dh"),
    (Scheduler::SourceHashing, "sh"),
    (Scheduler::ShortestExpectedDelay, "sed"),
    (Scheduler::NeverQueue, "nq"),
    (Scheduler::WeightedFailover, "fo"),
    (Scheduler::WeightedOverflow, "ovf"),
    (Scheduler::Maglev, "mh"),
    (Scheduler::TwoChoice, "twos"),
];

impl Scheduler {
    /// Every named scheduler (without [`Scheduler::Other`]).
    pub fn all() -> impl Iterator<Item = Scheduler> {
        KNOWN.into_iter().map(|(s, _)| s)
    }

    /// The kernel's name, e.g. `"wrr"`.
    pub fn name(&self) -> &str {
        match self {
            Scheduler::Other(name) => name,
            known => KNOWN
                .iter()
                .find(|(s, _)| s == known)
                .map_or("", |(_, name)| name),
        }
    }

    /// The kernel module implementing it, e.g. `"ip_vs_wrr"`.
    pub fn module(&self) -> String {
        format!("ip_vs_{}", self.name())
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheduler {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(KNOWN.iter().find(|(_, name)| *name == s).map_or_else(
            || Scheduler::Other(s.to_owned()),
            |(sched, _)| sched.clone(),
        ))
    }
}

impl From<String> for Scheduler {
    fn from(s: String) -> Self {
        match s.parse() {
            Ok(sched) => sched,
            Err(never) => match never {},
        }
    }
}

impl From<Scheduler> for String {
    fn from(s: Scheduler) -> Self {
        s.name().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_scheduler_round_trips_and_is_not_other() {
        for sched in Scheduler::all() {
            let parsed: Scheduler = sched.name().parse().unwrap();
            assert_eq!(parsed, sched);
            assert!(!matches!(parsed, Scheduler::Other(_)));
            assert!(sched.name().len() <= MAX_NAME_LEN);
        }
        assert_eq!(Scheduler::all().count(), 14);
        assert_eq!(Scheduler::TwoChoice.module(), "ip_vs_twos");
    }

    #[test]
    fn unknown_names_are_kept() {
        let none: Scheduler = "none".parse().unwrap();
        assert_eq!(none, Scheduler::Other("none".into()));
        assert_eq!(none.to_string(), "none");
    }

    #[test]
    fn serializes_as_the_kernel_name() {
        let json = serde_json::to_string(&Scheduler::WeightedRoundRobin).unwrap();
        assert_eq!(json, "\"wrr\"");
        let back: Scheduler = serde_json::from_str("\"sh\"").unwrap();
        assert_eq!(back, Scheduler::SourceHashing);
    }
}
