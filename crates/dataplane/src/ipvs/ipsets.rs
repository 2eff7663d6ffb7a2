//! kube-proxy's ipsets, synced by diff each sync: missing sets created,
//! members added and deleted, a set whose type or options changed rebuilt
//! atomically (temporary set + swap). Sets are synced before the iptables
//! rules that reference them; sets no longer wanted are destroyed after the
//! rules, and only when nothing references them any more.

use desired::DesiredState;
use ipset::{Ipset, ListedSet, Member, SetName, SetSpec, SyncReport};
use reconcile::ipsets::WantedSet;

use crate::error::{Context as _, Error};
use crate::summary::SyncSummary;

/// The kernel's ipsets, as the dataplane uses them.
pub(crate) trait SetTable {
    /// Every set with its members.
    ///
    /// # Errors
    /// When the sets cannot be listed.
    fn list(&mut self) -> Result<Vec<ListedSet>, ipset::Error>;

    /// Brings set `spec` from `current` (as listed; `None`: missing) to
    /// exactly `members`: created, changed by diff, or rebuilt atomically
    /// when its type or options differ.
    ///
    /// # Errors
    /// When the kernel refuses an operation on it.
    fn sync_listed(
        &mut self,
        spec: &SetSpec,
        current: Option<&ListedSet>,
        members: Vec<Member>,
    ) -> Result<SyncReport, ipset::Error>;

    /// Destroys set `name`.
    ///
    /// # Errors
    /// When it is missing or still referenced by a rule.
    fn destroy(&mut self, name: &SetName) -> Result<(), ipset::Error>;
}

impl SetTable for Ipset {
    fn list(&mut self) -> Result<Vec<ListedSet>, ipset::Error> {
        Ipset::list(self)
    }

    fn sync_listed(
        &mut self,
        spec: &SetSpec,
        current: Option<&ListedSet>,
        members: Vec<Member>,
    ) -> Result<SyncReport, ipset::Error> {
        Ipset::sync_listed(self, spec, current, members)
    }

    fn destroy(&mut self, name: &SetName) -> Result<(), ipset::Error> {
        Ipset::destroy(self, name)
    }
}

/// The ipsets of this node.
#[derive(Debug)]
pub(super) struct Sets<S = Ipset> {
    client: S,
    /// What the last sync left, when every set synced: to tell drift from change.
    last: Option<Vec<WantedSet>>,
}

/// The sets listed by [`Sets::sync`], for [`Sets::destroy_unwanted`].
pub(super) struct Listed {
    sets: Vec<ListedSet>,
    wanted: Vec<WantedSet>,
}

impl Sets {
    /// Opens the ipset netlink socket.
    ///
    /// # Errors
    /// When the socket cannot be opened.
    pub(super) fn start() -> Result<Self, Error> {
        Ok(Sets::over(
            Ipset::open().context("opening the ipset netlink socket")?,
        ))
    }
}

impl<S: SetTable> Sets<S> {
    /// The sets of `client`, nothing synced yet.
    pub(super) fn over(client: S) -> Self {
        Sets { client, last: None }
    }

    /// The client of the kernel's sets.
    pub(super) fn client(&self) -> &S {
        &self.client
    }

    /// Brings every wanted set to its members; a set that fails is logged
    /// and counted, the others go on.
    ///
    /// # Errors
    /// When the sets cannot be listed.
    pub(super) fn sync(
        &mut self,
        state: &DesiredState,
        summary: &mut SyncSummary,
    ) -> Result<Listed, Error> {
        let listed = self.client.list().context("listing the ipsets")?;
        let wanted = reconcile::ipsets::wanted(state);
        if let Some(last) = &self.last {
            summary.drift(reconcile::drift::ipsets(last, &listed));
        }
        let mut clean = true;
        for set in &wanted {
            let current = listed.iter().find(|l| l.name == *set.spec.name());
            let result = self
                .client
                .sync_listed(&set.spec, current, set.members.clone());
            match result {
                Ok(report) => {
                    summary.applied("ipset", usize::from(report.created || report.rebuilt));
                    summary.applied("ipset_entry", report.added + report.deleted);
                }
                Err(e) => {
                    clean = false;
                    summary.failed("ipset", &format_args!("set {}: {e}", set.spec.name()));
                }
            }
        }
        self.last = clean.then(|| wanted.clone());
        Ok(Listed {
            sets: listed,
            wanted,
        })
    }

    /// Destroys our sets that are no longer wanted and that no rule
    /// references (a referenced one is left for a later sync).
    pub(super) fn destroy_unwanted(&mut self, listed: &Listed, summary: &mut SyncSummary) {
        for name in reconcile::ipsets::unwanted(&listed.sets, &listed.wanted) {
            let referenced = listed
                .sets
                .iter()
                .any(|s| s.name == *name && s.references > 0);
            if referenced {
                continue;
            }
            match self.client.destroy(name) {
                Ok(()) => summary.applied("ipset", 1),
                Err(e) => summary.failed("ipset", &format_args!("destroy set {name}: {e}")),
            }
        }
    }
}
