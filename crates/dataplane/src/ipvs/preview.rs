//! The live pre-flight (`--dry-run --diff`): one IPVS-mode sync run over
//! clients that read the node's real tables and record, instead of
//! applying, every operation the sync asks of them. The plan is the sync's
//! own (the same code decides, with the same inputs), so what is printed is
//! exactly what a takeover's first sync would apply; nothing is written,
//! no module is loaded and `kube-ipvs0` is not created.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use conntrack::{Conntrack, Family as FlowFamily, Flow};
use desired::DesiredState;
use hostnet::dummy::{AddressChanges, BoundAddresses, DummyLink, LinkError, diff_addresses};
use hostnet::sysctl::{Check, Sysctls, ipvs_mode_settings};
use hostnet::{KUBE_IPVS0, Rtnl};
use ipset::{Ipset, ListedSet, Member, SetName, SetPlan, SetSpec, SyncReport};
use iptables::{DesiredTable, Family, Iptables, Plan};

use super::{AddressTable, IpvsKernel, IpvsOptions, IpvsSync, Kernel, SetTable, addresses, ipsets};
use super::{rules, table};
use crate::conntrack::{FlowTable, Flows};
use crate::diff::{Diff, Op};
use crate::error::{Cause, Context as _, Error};
use crate::tables::Writer;

/// A client of one of the node's tables that reads the real table and
/// records the operations asked of it instead of applying them.
#[derive(Debug)]
pub(crate) struct Recorder<C> {
    client: C,
    ops: Mutex<Vec<Op>>,
}

impl<C> Recorder<C> {
    fn over(client: C) -> Self {
        Recorder {
            client,
            ops: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, op: Op) {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(op);
    }

    /// The operations recorded so far, taken out.
    pub(crate) fn take(&self) -> Vec<Op> {
        std::mem::take(&mut self.ops.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The node's tables, read but never written.
#[derive(Debug)]
pub(crate) struct Preview;

impl Kernel for Preview {
    type Ipvs = Recorder<ipvs::Client>;
    type Addresses = Recorder<Link>;
    type Sets = Recorder<Ipset>;
    type Writer = Recorder<Iptables>;
    type Flows = Recorder<Conntrack>;
}

impl IpvsKernel for Recorder<ipvs::Client> {
    fn apply(&mut self, changes: &[ipvs::Change]) -> Vec<Result<(), ipvs::Error>> {
        changes
            .iter()
            .map(|change| self.record(Op::Ipvs(change.clone())))
            .map(Ok)
            .collect()
    }

    fn list(&mut self) -> Result<Vec<ipvs::ServiceWithDestinations>, ipvs::Error> {
        self.client.list()
    }

    fn services(&mut self) -> Result<Vec<ipvs::ServiceEntry>, ipvs::Error> {
        self.client.services()
    }

    fn list_only(
        &mut self,
        keys: &BTreeSet<ipvs::ServiceKey>,
    ) -> Result<Vec<ipvs::ServiceWithDestinations>, ipvs::Error> {
        self.client.list_only(keys)
    }

    fn overview(
        &mut self,
        each: &mut dyn FnMut(&ipvs::OverviewService),
    ) -> Result<(), ipvs::Error> {
        self.client.overview(each)
    }

    /// Loads nothing: the pre-flight changes nothing on the node.
    fn load_scheduler(&mut self, _name: &str) -> Result<(), hostnet::ModuleError> {
        Ok(())
    }
}

/// `kube-ipvs0` if it exists, and the rtnetlink socket to read it.
#[derive(Debug)]
pub(crate) struct Link {
    netlink: Rtnl,
    link: Option<DummyLink>,
}

impl AddressTable for Recorder<Link> {
    type Listed = BoundAddresses;

    fn addresses(listed: &BoundAddresses) -> BTreeSet<IpAddr> {
        listed.list().iter().map(|(ip, _)| *ip).collect()
    }

    fn list(&mut self) -> Result<BoundAddresses, LinkError> {
        let Link { netlink, link } = &mut self.client;
        match link {
            Some(link) => link.addresses(netlink),
            None => Ok(BoundAddresses::default()),
        }
    }

    fn left(bound: &BTreeSet<IpAddr>) -> BoundAddresses {
        BoundAddresses::hosts(bound)
    }

    fn sync(
        &mut self,
        listed: BoundAddresses,
        target: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError> {
        let changes = diff_addresses(listed.list(), target);
        for &(ip, prefix) in &changes.removed {
            self.record(Op::Unbind {
                link: KUBE_IPVS0,
                ip,
                prefix,
            });
        }
        for &ip in &changes.added {
            self.record(Op::Bind {
                link: KUBE_IPVS0,
                ip,
                prefix: hostnet::dummy::host_prefix(ip),
            });
        }
        Ok(changes)
    }
}

impl SetTable for Recorder<Ipset> {
    fn list(&mut self) -> Result<Vec<ListedSet>, ipset::Error> {
        self.client.list()
    }

    fn sync_listed(
        &mut self,
        spec: &SetSpec,
        current: Option<&ListedSet>,
        members: &[Member],
    ) -> Result<SyncReport, ipset::Error> {
        let plan = SetPlan::new(spec, current, members);
        let report = plan.report();
        self.record(Op::Set(spec.clone(), plan));
        Ok(report)
    }

    fn destroy(&mut self, name: &SetName) -> Result<(), ipset::Error> {
        self.record(Op::DestroySet(name.clone()));
        Ok(())
    }
}

impl Writer for Recorder<Iptables> {
    fn detect(family: Family) -> Result<Self, iptables::Error> {
        Iptables::detect(family).map(Recorder::over)
    }

    fn family(&self) -> Family {
        self.client.family()
    }

    /// Plans against a fresh read of the table, as a periodic sync does.
    fn sync(&mut self, table: &DesiredTable, _full: bool) -> Result<Option<Plan>, iptables::Error> {
        let current = self.client.read(table.table)?;
        let plan = self.client.plan(&current, table)?;
        if let Some(plan) = &plan {
            self.record(Op::Restore {
                family: self.client.family(),
                text: plan.text().to_owned(),
            });
        }
        Ok(plan)
    }
}

impl FlowTable for Recorder<Conntrack> {
    fn open() -> Result<Self, conntrack::Error> {
        Conntrack::open().map(Recorder::over)
    }

    fn list(&mut self, family: FlowFamily) -> Result<Vec<Flow>, conntrack::Error> {
        self.client.list(family)
    }

    fn delete(&mut self, _family: FlowFamily, flows: &[Flow]) -> Result<usize, conntrack::Error> {
        for flow in flows {
            self.record(Op::DeleteFlow(flow.to_string()));
        }
        Ok(flows.len())
    }
}

/// The IPVS-mode sync of this node, run over [`Recorder`]s: what a
/// takeover would apply here, read from the node's tables.
#[derive(Debug)]
pub struct IpvsPreview {
    sync: IpvsSync<Preview>,
    /// What the dataplane's start would change (sysctls, the dummy link).
    setup: Vec<Op>,
}

impl IpvsPreview {
    /// Opens the node's tables for reading: IPVS (its module must be loaded
    /// already), `kube-ipvs0` if it exists, the ipset socket; and compares
    /// kube-proxy's IPVS-mode sysctls with the node's.
    ///
    /// Blocks on the kernel: call it where blocking is allowed.
    ///
    /// # Errors
    /// When IPVS or the links cannot be read, or a sysctl cannot be.
    pub fn open(options: &IpvsOptions) -> Result<Self, Error> {
        let ipvs = ipvs::Client::new().context("connecting to the kernel's IPVS")?;
        let mut netlink = Rtnl::open().context("reading the node's links")?;
        let link = DummyLink::find(&mut netlink, KUBE_IPVS0)
            .with_context(|| format!("reading {KUBE_IPVS0}"))?;
        let mut setup = sysctls(options.strict_arp)?;
        if link.is_none() {
            setup.push(Op::CreateLink(KUBE_IPVS0));
        }
        let sets = Ipset::open()
            .context("opening the ipset netlink socket")
            .inspect_err(|e| tracing::error!(error = %e, "cannot read the ipsets"))
            .ok()
            .map(|client| ipsets::Sets::over(Recorder::over(client)));
        Ok(IpvsPreview {
            sync: IpvsSync {
                ipvs: table::IpvsTable::over(
                    Recorder::over(ipvs),
                    options.owner.clone(),
                    options.drain_timeout,
                ),
                addresses: addresses::Addresses::over(Recorder::over(Link { netlink, link })),
                sets,
                rules: rules::Rules::default(),
                flows: Flows::default(),
            },
            setup,
        })
    }

    /// The node's own interface addresses (all but `kube-ipvs0`'s), where
    /// NodePorts listen.
    ///
    /// # Errors
    /// When they cannot be listed.
    pub fn node_addresses(&mut self) -> Result<BTreeSet<IpAddr>, Error> {
        let Link { netlink, link } = &mut self.sync.addresses.link_mut().client;
        hostnet::addresses::node_addresses(netlink, link.as_ref().map_or(0, DummyLink::index))
            .context("reading the node's addresses")
    }

    /// Every operation a first sync to `state` would apply, as a full
    /// (periodic) sync plans them.
    ///
    /// # Errors
    /// When a table could not be read (each cause is logged): then the
    /// operations would be a guess, so none are returned.
    pub fn diff(mut self, state: &DesiredState) -> Result<Diff, Error> {
        let summary = self.sync.sync(state, true);
        if !summary.complete() {
            let parts: Vec<&str> = summary.broken.iter().map(|p| p.as_str()).collect();
            return Err(Error::new(
                "reading the node's tables",
                Cause::Unread(parts.join(", ")),
            ));
        }
        let sync = &self.sync;
        let mut ops = std::mem::take(&mut self.setup);
        ops.extend(sync.ipvs.client().take());
        ops.extend(sync.addresses.link().take());
        ops.extend(sync.sets.iter().flat_map(|s| s.client().take()));
        ops.extend(sync.rules.writers().flat_map(Recorder::take));
        ops.extend(sync.flows.client().into_iter().flat_map(Recorder::take));
        Ok(Diff::new(ops))
    }
}

/// kube-proxy's IPVS-mode sysctls that differ on this node, as the writes
/// the dataplane's start would make.
fn sysctls(strict_arp: bool) -> Result<Vec<Op>, Error> {
    let sysctls = Sysctls::default();
    let kernel = sysctls
        .kernel_version()
        .context("reading the kernel's version")?;
    let mut ops = Vec::new();
    for setting in ipvs_mode_settings(kernel, strict_arp) {
        let check = sysctls
            .check(setting.key, setting.value)
            .with_context(|| format!("reading sysctl {}", setting.key))?;
        if !matches!(check, Check::Expected) {
            ops.push(Op::Sysctl {
                key: setting.key.to_string(),
                value: setting.value,
            });
        }
    }
    Ok(ops)
}
