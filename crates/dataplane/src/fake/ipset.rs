//! The kernel's ipsets in memory, refusing what the kernel refuses: creating
//! a set that exists, destroying one that does not, and destroying one that
//! an iptables rule still references (`IPSET_ERR_BUSY`): the references are
//! counted from the rules of the iptables fake, as the kernel counts the
//! `set` matches that use a set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ipset::{Contents, Errno, ListedSet, Member, Op, SetName, SetSpec, SyncReport};

use crate::fake::iptables::{Kernel, lock};
use crate::ipvs::SetTable;

/// The sets, shared by the dataplane and the test.
#[derive(Debug, Default)]
pub(crate) struct Sets {
    sets: BTreeMap<SetName, (SetSpec, Vec<Member>)>,
    /// Whether listing fails (no `ip_set` module).
    pub(crate) unlistable: bool,
}

impl Sets {
    /// The members of set `name`, if it exists.
    pub(crate) fn members(&self, name: &str) -> Option<&[Member]> {
        self.sets
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, (_, members))| members.as_slice())
    }

    /// Removes every member of set `name` (`ipset flush`, by hand).
    pub(crate) fn flush(&mut self, name: &str) {
        if let Some((_, (_, members))) = self.sets.iter_mut().find(|(n, _)| n.as_str() == name) {
            members.clear();
        }
    }

    /// The names of every set.
    pub(crate) fn names(&self) -> Vec<String> {
        self.sets.keys().map(|n| n.as_str().to_owned()).collect()
    }
}

/// The sets, and the iptables rules that may reference them.
#[derive(Debug, Clone)]
pub(crate) struct FakeSets {
    sets: Arc<Mutex<Sets>>,
    rules: Kernel,
}

fn refused(op: Op, target: &SetName, errno: Errno) -> ipset::Error {
    ipset::Error::Kernel {
        op,
        target: target.to_string(),
        errno,
        text: None,
    }
}

impl FakeSets {
    /// Sets whose references are the `set` matches of the rules in `rules`.
    pub(crate) fn new(rules: &Kernel) -> Self {
        FakeSets {
            sets: Arc::default(),
            rules: Arc::clone(rules),
        }
    }

    /// The sets.
    pub(crate) fn sets(&self) -> MutexGuard<'_, Sets> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn references(&self, name: &SetName) -> u32 {
        lock(&self.rules).references(name.as_str())
    }
}

impl SetTable for FakeSets {
    fn list(&mut self) -> Result<Vec<ListedSet>, ipset::Error> {
        let sets = self.sets();
        if sets.unlistable {
            return Err(ipset::Error::Kernel {
                op: Op::List,
                target: String::new(),
                errno: Errno::PROTOCOL,
                text: None,
            });
        }
        Ok(sets
            .sets
            .iter()
            .map(|(name, (spec, members))| ListedSet {
                name: name.clone(),
                references: self.references(name),
                contents: Contents::Known {
                    spec: spec.clone(),
                    members: members.clone(),
                },
            })
            .collect())
    }

    fn sync_listed(
        &mut self,
        spec: &SetSpec,
        current: Option<&ListedSet>,
        members: &[Member],
    ) -> Result<SyncReport, ipset::Error> {
        let mut sets = self.sets();
        let name = spec.name().clone();
        let mut members = members.to_vec();
        members.sort_by_key(|m| m.entry);
        let report = match (current.map(|c| &c.contents), sets.sets.get(&name)) {
            (None, Some(_)) => return Err(refused(Op::Create, &name, Errno::SET_EXISTS)),
            (None, None) => SyncReport {
                created: true,
                added: members.len(),
                ..SyncReport::default()
            },
            (Some(Contents::Known { spec: have, .. }), Some((_, now)))
                if spec.compatible_with(have) =>
            {
                let (add, del) = ipset::diff(now, &members);
                SyncReport {
                    added: add.len(),
                    deleted: del.len(),
                    ..SyncReport::default()
                }
            }
            // Another type or options: a temporary set, swapped in.
            (Some(_), _) => SyncReport {
                rebuilt: true,
                added: members.len(),
                ..SyncReport::default()
            },
        };
        sets.sets.insert(name, (spec.clone(), members));
        Ok(report)
    }

    fn destroy(&mut self, name: &SetName) -> Result<(), ipset::Error> {
        if self.references(name) > 0 {
            return Err(refused(Op::Destroy, name, Errno::BUSY));
        }
        self.sets()
            .sets
            .remove(name)
            .map(drop)
            .ok_or_else(|| refused(Op::Destroy, name, Errno::NO_SUCH_SET))
    }
}
