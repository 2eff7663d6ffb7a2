//! Drift repaired by the syncs, as Warning Events on the Node ([`REASON`]), rate-limited:
//! at most one Event per kind of drift every [`WINDOW`], with the counts aggregated since
//! the last Event that named that kind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dataplane::Counts;

/// The Event's reason.
pub(crate) const REASON: &str = "DriftRepaired";

/// The shortest time between two Events naming the same kind of drift.
pub(crate) const WINDOW: Duration = Duration::from_secs(5 * 60);

/// What has been reported, and what waits for its kind's window to pass.
#[derive(Debug, Default)]
pub(crate) struct DriftEvents {
    kinds: BTreeMap<&'static str, Kind>,
}

/// One kind of drift.
#[derive(Debug, Default)]
struct Kind {
    /// When an Event last named it.
    reported: Option<Instant>,
    /// Repairs not reported yet.
    pending: u64,
}

impl Kind {
    fn due(&self, now: Instant) -> bool {
        self.pending > 0
            && self
                .reported
                .is_none_or(|at| now.saturating_duration_since(at) >= WINDOW)
    }
}

impl DriftEvents {
    /// Takes one sync's drift (`drift`, by kind) at `now` and returns the note of the Event
    /// to publish, naming each kind whose window has passed (or that was never reported)
    /// with its repairs since its last Event; `None` when there is nothing to publish.
    pub(crate) fn observe(&mut self, drift: &Counts, now: Instant) -> Option<String> {
        for (kind, n) in drift {
            self.kinds.entry(kind).or_default().pending += n;
        }
        let mut due = Vec::new();
        for (kind, state) in &mut self.kinds {
            if state.due(now) {
                due.push(format!("{kind} {}", state.pending));
                state.pending = 0;
                state.reported = Some(now);
            }
        }
        (!due.is_empty()).then(|| {
            format!(
                "repaired kernel state changed behind the proxy's back: {} \
                 (counts since the last Event for each kind; at most one per kind every {} s)",
                due.join(", "),
                WINDOW.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(kinds: &[(&'static str, u64)]) -> Counts {
        kinds.iter().copied().collect()
    }

    #[test]
    fn first_drift_is_reported_at_once_with_its_kinds_and_counts() {
        let mut events = DriftEvents::default();
        let t0 = Instant::now();
        assert_eq!(events.observe(&Counts::new(), t0), None);
        let note = events
            .observe(&counts(&[("iptables_chain", 2), ("real_server", 1)]), t0)
            .expect("an Event");
        assert!(
            note.contains(": iptables_chain 2, real_server 1 ("),
            "{note}"
        );
    }

    #[test]
    fn more_drift_within_the_window_is_aggregated_and_reported_once_it_has_passed() {
        let mut events = DriftEvents::default();
        let t0 = Instant::now();
        let chain = counts(&[("iptables_chain", 1)]);
        assert!(events.observe(&chain, t0).is_some());
        assert_eq!(events.observe(&chain, t0 + Duration::from_secs(10)), None);
        assert_eq!(events.observe(&chain, t0 + Duration::from_secs(60)), None);
        // Nothing new, but the window has passed: the two repairs held back are reported.
        let note = events
            .observe(&Counts::new(), t0 + WINDOW)
            .expect("an Event");
        assert!(note.contains(": iptables_chain 2 ("), "{note}");
        // And then nothing until more drift.
        assert_eq!(events.observe(&Counts::new(), t0 + 3 * WINDOW), None);
        let note = events.observe(&chain, t0 + 3 * WINDOW).expect("an Event");
        assert!(note.contains(": iptables_chain 1 ("), "{note}");
    }

    #[test]
    fn kinds_have_windows_of_their_own() {
        let mut events = DriftEvents::default();
        let t0 = Instant::now();
        assert!(events.observe(&counts(&[("address", 1)]), t0).is_some());
        let later = t0 + Duration::from_secs(30);
        let note = events
            .observe(&counts(&[("address", 1), ("ipset_entry", 4)]), later)
            .expect("an Event for the new kind");
        assert!(note.contains(": ipset_entry 4 ("), "{note}");
        assert!(!note.contains("address"), "{note}");
        // The address repair held back comes out when its own window ends, alone.
        let note = events
            .observe(&Counts::new(), t0 + WINDOW)
            .expect("an Event");
        assert!(note.contains(": address 1 ("), "{note}");
        assert!(!note.contains("ipset_entry"), "{note}");
    }
}
