//! The part of the table a sync looks at.
//!
//! A periodic sync looks at the whole kernel table and diffs all of it: that
//! is what repairs drift. A sync triggered by a change needs only the virtual
//! servers that the change touched: those whose wanted state differs from
//! what the last successful sync programmed (added, removed or changed), and
//! those with real servers still draining, whose deletion waits on the
//! kernel's connection counters. Everything else is, as far as we know,
//! exactly as the last sync left it; if it was changed by hand meanwhile,
//! the next periodic sync repairs it (within `syncPeriod`). A periodic sync
//! finds its scope with a cheap look at the whole table ([`crate::survey`]).

use std::collections::BTreeSet;

use ipvs::ServiceKey;

use crate::drain::Draining;
use crate::wanted::Wanted;

/// The virtual servers one sync reads and plans for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The keys to read from the kernel.
    pub keys: BTreeSet<ServiceKey>,
    /// What is wanted for the keys planned for (a key wanted no more is
    /// absent). Besides the keys read, these may hold keys known to be
    /// missing from the kernel ([`crate::survey`]).
    pub wanted: Wanted,
    /// What the last sync programmed for the keys planned for, to count drift.
    pub last: Wanted,
}

impl Scope {
    /// The scope of a change-driven sync from `last` (programmed by the
    /// previous successful sync) to `wanted`, with `draining` real servers.
    pub fn changed(last: &Wanted, wanted: &Wanted, draining: &Draining) -> Scope {
        let mut keys: BTreeSet<ServiceKey> = wanted
            .iter()
            .filter(|(key, want)| last.get(key) != Some(want))
            .map(|(key, _)| *key)
            .collect();
        keys.extend(last.keys().filter(|key| !wanted.contains_key(key)));
        keys.extend(draining.services());
        Scope::of(&keys, keys.clone(), wanted, Some(last))
    }

    /// The scope that plans for `planned` and reads `read` (a subset).
    pub(crate) fn of(
        planned: &BTreeSet<ServiceKey>,
        read: BTreeSet<ServiceKey>,
        wanted: &Wanted,
        last: Option<&Wanted>,
    ) -> Scope {
        let pick = |from: &Wanted| -> Wanted {
            planned
                .iter()
                .filter_map(|key| from.get(key).map(|w| (*key, w.clone())))
                .collect()
        };
        Scope {
            wanted: pick(wanted),
            last: last.map(pick).unwrap_or_default(),
            keys: read,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use ipvs::Protocol;

    use super::*;
    use crate::fixtures;
    use crate::wanted::WantedService;

    fn key(last_octet: u8) -> ServiceKey {
        ServiceKey::inet(Protocol::Tcp, IpAddr::from([10, 96, 0, last_octet]), 80)
    }

    fn want(key: ServiceKey, backends: &[u8]) -> (ServiceKey, Arc<WantedService>) {
        let dests: Vec<_> = backends
            .iter()
            .map(|b| fixtures::dest(&format!("10.244.0.{b}"), 8080, 1))
            .collect();
        fixtures::want(key, "rr", &dests)
    }

    #[test]
    fn only_added_removed_changed_and_draining_virtual_servers_are_in_scope() {
        let last: Wanted = [
            want(key(1), &[1, 2]),
            want(key(2), &[3]),
            want(key(3), &[4]),
            want(key(4), &[5]),
        ]
        .into();
        let wanted: Wanted = [
            want(key(1), &[1, 2]), // unchanged
            want(key(2), &[3, 6]), // an endpoint more
            want(key(4), &[5]),    // unchanged, but one of its real servers drains
            want(key(5), &[7]),    // new
        ]
        .into(); // key(3) removed
        let mut draining = Draining::new(Duration::from_secs(60));
        draining.start(
            (key(4), IpAddr::from([10, 244, 0, 9]), 8080),
            None,
            Instant::now(),
        );

        let scope = Scope::changed(&last, &wanted, &draining);
        assert_eq!(scope.keys, [key(2), key(3), key(4), key(5)].into());
        assert_eq!(
            scope.wanted.keys().copied().collect::<Vec<_>>(),
            [key(2), key(4), key(5)]
        );
        assert_eq!(
            scope.last.keys().copied().collect::<Vec<_>>(),
            [key(2), key(3), key(4)]
        );
        assert_eq!(scope.wanted[&key(2)], wanted[&key(2)]);
    }

    #[test]
    fn nothing_changed_nothing_in_scope() {
        let last: Wanted = [want(key(1), &[1])].into();
        let scope = Scope::changed(&last, &last.clone(), &Draining::new(Duration::from_secs(1)));
        assert_eq!(scope, Scope::default());
    }
}
