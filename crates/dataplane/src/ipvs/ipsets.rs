//! kube-proxy's ipsets, synced by diff each sync: missing sets created,
//! members added and deleted, a set whose type or options changed rebuilt
//! atomically (temporary set + swap). A full sync diffs against a dump of
//! every set; a change-driven one after a clean sync against what that sync
//! left. Sets are synced before the iptables rules that reference them; sets
//! no longer wanted are destroyed after the rules, and only when nothing
//! references them any more.

use desired::DesiredState;
use ipset::{Contents, Ipset, ListedSet, Member, SetName, SetSpec, SyncReport};
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
        members: &[Member],
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
        members: &[Member],
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

/// Our sets that [`Sets::sync`] found no longer wanted, for [`Sets::destroy_unwanted`],
/// with whether a rule referenced each when listed.
pub(super) struct Unwanted(Vec<(SetName, bool)>);

impl Unwanted {
    /// Our sets among `listed` that are not `wanted`.
    fn of(listed: &[ListedSet], wanted: &[WantedSet]) -> Unwanted {
        let referenced =
            |name: &SetName| (listed.iter()).any(|s| s.name == *name && s.references > 0);
        Unwanted(
            reconcile::ipsets::unwanted(listed, wanted)
                .into_iter()
                .map(|name| (name.clone(), referenced(name)))
                .collect(),
        )
    }
}

/// The sets as the last sync `left` them, as a listing would show them.
fn left(last: Vec<WantedSet>) -> Vec<ListedSet> {
    (last.into_iter())
        .map(|set| ListedSet {
            name: set.spec.name().clone(),
            references: 0,
            contents: Contents::Known {
                spec: set.spec,
                members: set.members,
            },
        })
        .collect()
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
    /// and counted, the others go on. A change-driven sync after one that
    /// synced every set starts from what that sync left, without listing; any
    /// other lists every set, counts what changed behind our back as drift,
    /// and finds our sets no longer wanted.
    ///
    /// # Errors
    /// When the sets cannot be listed.
    pub(super) fn sync(
        &mut self,
        state: &DesiredState,
        full: bool,
        summary: &mut SyncSummary,
    ) -> Result<Unwanted, Error> {
        let (listed, dumped) = match self.last.take() {
            Some(last) if !full => (left(last), false),
            last => {
                let listed = self.client.list().context("listing the ipsets")?;
                // What the last sync left goes before the wanted sets are built.
                if let Some(last) = last {
                    summary.drift(reconcile::drift::ipsets(&last, &listed));
                }
                (listed, true)
            }
        };
        let wanted = reconcile::ipsets::wanted(state);
        let unwanted = match dumped {
            true => Unwanted::of(&listed, &wanted),
            false => Unwanted(Vec::new()),
        };
        let mut clean = true;
        for set in &wanted {
            let current = listed.iter().find(|l| l.name == *set.spec.name());
            let result = self.client.sync_listed(&set.spec, current, &set.members);
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
        self.last = clean.then_some(wanted);
        Ok(unwanted)
    }

    /// Destroys our sets that are no longer wanted and that no rule
    /// references (a referenced one is left for a later sync).
    pub(super) fn destroy_unwanted(&mut self, unwanted: &Unwanted, summary: &mut SyncSummary) {
        for (name, referenced) in &unwanted.0 {
            if *referenced {
                continue;
            }
            match self.client.destroy(name) {
                Ok(()) => summary.applied("ipset", 1),
                Err(e) => summary.failed("ipset", &format_args!("destroy set {name}: {e}")),
            }
        }
    }
}
