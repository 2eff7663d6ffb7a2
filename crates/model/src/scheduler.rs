//! IPVS scheduling methods and scheduler flags.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

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

/// The scheduler flags of a virtual server (`IP_VS_SVC_F_SCHED1`..`3`), which `sh` reads as
/// `sh-fallback`, `sh-port` and `mh` as `mh-fallback`, `mh-port`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags(u8);

impl SchedFlags {
    /// `flag-1`: `sh-fallback` for `sh`, `mh-fallback` for `mh`.
    pub const FLAG_1: SchedFlags = SchedFlags(1);
    /// `flag-2`: `sh-port` for `sh`, `mh-port` for `mh`.
    pub const FLAG_2: SchedFlags = SchedFlags(2);
    /// `flag-3`.
    pub const FLAG_3: SchedFlags = SchedFlags(4);
    /// `mh-port` (kube-proxy's `FlagSourceHash`, which it sets whenever the scheduler is `mh`).
    pub const MH_PORT: SchedFlags = SchedFlags::FLAG_2;

    /// No flag.
    pub const fn empty() -> SchedFlags {
        SchedFlags(0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: SchedFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The kernel's bits (`IPVS_SVC_ATTR_FLAGS`): `flag-1` is `0x0008`.
    pub const fn kernel_bits(self) -> u32 {
        (self.0 as u32) << 3
    }

    /// The flags' names as ipvsadm prints them for `scheduler`: `sh-fallback,sh-port` for
    /// `sh`, `mh-fallback,mh-port` for `mh`, `flag-N` for the others.
    pub fn names(self, scheduler: Scheduler) -> Vec<&'static str> {
        let names: &[(SchedFlags, &str)] = match scheduler {
            Scheduler::Sh => &[(Self::FLAG_1, "sh-fallback"), (Self::FLAG_2, "sh-port")],
            Scheduler::Mh => &[(Self::FLAG_1, "mh-fallback"), (Self::FLAG_2, "mh-port")],
            _ => &[
                (Self::FLAG_1, "flag-1"),
                (Self::FLAG_2, "flag-2"),
                (Self::FLAG_3, "flag-3"),
            ],
        };
        names
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }
}

impl std::ops::BitOr for SchedFlags {
    type Output = SchedFlags;

    fn bitor(self, rhs: SchedFlags) -> SchedFlags {
        SchedFlags(self.0 | rhs.0)
    }
}

impl Serialize for SchedFlags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.kernel_bits())
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

    #[test]
    fn flags_are_the_kernels_bits_and_ipvsadms_names() {
        // include/uapi/linux/ip_vs.h: IP_VS_SVC_F_SCHED1 0x0008, SCHED2 0x0010, SCHED3 0x0020.
        assert_eq!(SchedFlags::FLAG_1.kernel_bits(), 0x0008);
        assert_eq!(SchedFlags::FLAG_2.kernel_bits(), 0x0010);
        assert_eq!(SchedFlags::FLAG_3.kernel_bits(), 0x0020);
        let all = SchedFlags::FLAG_1 | SchedFlags::FLAG_2 | SchedFlags::FLAG_3;
        // ipvsadm's print_sched_flags.
        assert_eq!(all.names(Scheduler::Sh), ["sh-fallback", "sh-port"]);
        assert_eq!(all.names(Scheduler::Mh), ["mh-fallback", "mh-port"]);
        assert_eq!(all.names(Scheduler::Rr), ["flag-1", "flag-2", "flag-3"]);
        assert!(SchedFlags::empty().names(Scheduler::Mh).is_empty());
    }
}
