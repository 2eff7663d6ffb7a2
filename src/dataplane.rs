//! The kernel step of the pipeline in IPVS mode: observe what the kernel has,
//! diff it with the desired state (crate `reconcile`) and apply the result.
//!
//! Each sync reads the IPVS table (all of it on a periodic sync; on a change,
//! only the virtual servers the change touched, see [`reconcile::Scope`])
//! and the addresses on `kube-ipvs0`, applies
//! the virtual/real server operations as one pipelined batch, then binds and
//! unbinds addresses (after the virtual servers exist, after they are gone).
//! Nothing is flushed or recreated: what is already right is left alone, so
//! restarts and resyncs keep established connections.
//!
//! Not yet programmed (issue 7 continues): kube-proxy's ipsets and helper
//! iptables rules, and UDP conntrack cleanup; the crates that do it
//! (`ipset`, `iptables`, `conntrack`) exist and are wired in next.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use desired::DesiredState;
use hostnet::dummy::DummyLink;
use hostnet::modules::{Modules, ipvs_modules};
use hostnet::sysctl::{KernelVersion, Sysctls, ipvs_mode_settings};
use ipnet::IpNet;
use reconcile::{Draining, Ownership, Scope, Wanted};

use crate::metrics::Metrics;
use crate::runner::Reason;

/// The dummy interface that holds every Service address, as in kube-proxy.
pub(crate) const DUMMY_LINK: &str = "kube-ipvs0";

/// How long a leaving real server may drain before it is deleted anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one sync did, for the summary log line and the metrics.
#[derive(Debug, Default)]
pub(crate) struct SyncSummary {
    /// Operations applied, by kind.
    pub(crate) applied: BTreeMap<&'static str, u64>,
    /// Operations that failed, by kind.
    pub(crate) failed: BTreeMap<&'static str, u64>,
    /// Drift found and repaired, by kind.
    pub(crate) drift: BTreeMap<&'static str, u64>,
    /// Real servers draining after this sync.
    pub(crate) draining: usize,
}

impl SyncSummary {
    fn count(map: &mut BTreeMap<&'static str, u64>, kind: &'static str, n: u64) {
        if n > 0 {
            *map.entry(kind).or_insert(0) += n;
        }
    }

    /// Adds the summary to the metrics.
    pub(crate) fn record(&self, metrics: &Metrics) {
        for (kind, n) in &self.applied {
            Metrics::count(&metrics.ops_applied, kind, *n);
        }
        for (kind, n) in &self.failed {
            Metrics::count(&metrics.sync_errors, kind, *n);
        }
        for (kind, n) in &self.drift {
            Metrics::count(&metrics.drift_repaired, kind, *n);
        }
    }
}

/// The kind of object an IPVS change is about, for metrics.
fn kind(change: &ipvs::Change) -> &'static str {
    match change {
        ipvs::Change::AddService(_)
        | ipvs::Change::EditService(_)
        | ipvs::Change::DeleteService(_) => "virtual_server",
        _ => "real_server",
    }
}

/// Node settings the IPVS dataplane needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct IpvsOptions {
    /// `ipvs.excludeCIDRs`: virtual servers there are never touched.
    pub(crate) exclude_cidrs: Vec<IpNet>,
    /// `ipvs.strictARP`.
    pub(crate) strict_arp: bool,
    /// `ipvs.tcpTimeout`, `tcpFinTimeout`, `udpTimeout` (zero: leave the kernel's).
    pub(crate) timeouts: [Duration; 3],
    /// Schedulers whose modules must be loaded.
    pub(crate) schedulers: Vec<String>,
}

/// The IPVS dataplane of one node (or one network namespace).
#[derive(Debug)]
pub(crate) struct IpvsDataplane {
    client: ipvs::Client,
    netlink: rtnetlink::Handle,
    link: DummyLink,
    draining: Draining,
    exclude: Vec<IpNet>,
    /// What the last fully successful sync left: to tell drift from change.
    last: Option<(Wanted, BTreeSet<IpAddr>)>,
}

impl IpvsDataplane {
    /// Checks and loads the kernel modules, sets kube-proxy's sysctls and the
    /// IPVS timeouts, and makes sure `kube-ipvs0` exists.
    ///
    /// # Errors
    /// When IPVS cannot be used here: a missing module (named), no IPVS
    /// netlink family, or the dummy link cannot be created.
    pub(crate) async fn start(options: &IpvsOptions) -> anyhow::Result<Self> {
        let schedulers: Vec<&str> = options.schedulers.iter().map(String::as_str).collect();
        Modules::host()
            .ensure(&ipvs_modules(&schedulers))
            .context("loading the IPVS kernel modules")?;
        let mut client = ipvs::Client::new().context("connecting to the kernel's IPVS")?;
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let kernel = KernelVersion::parse(release.trim()).unwrap_or(KernelVersion(5, 10));
        match Sysctls::with_root("/proc/sys")
            .ensure_all(&ipvs_mode_settings(kernel, options.strict_arp))
        {
            Ok(changed) => tracing::info!(?changed, "sysctls for IPVS mode"),
            Err(e) => tracing::warn!(error = %e, "cannot set a sysctl IPVS mode needs"),
        }
        let [tcp, tcp_fin, udp] = options
            .timeouts
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        if tcp > 0 || tcp_fin > 0 || udp > 0 {
            client
                .set_timeouts(&ipvs::Timeouts { tcp, tcp_fin, udp })
                .context("setting the IPVS timeouts")?;
        }
        let (connection, netlink, _) =
            rtnetlink::new_connection().context("opening an rtnetlink socket")?;
        tokio::spawn(connection);
        let link = DummyLink::ensure(&netlink, DUMMY_LINK)
            .await
            .with_context(|| format!("creating {DUMMY_LINK}"))?;
        Ok(IpvsDataplane {
            client,
            netlink,
            link,
            draining: Draining::new(DRAIN_TIMEOUT),
            exclude: options.exclude_cidrs.clone(),
            last: None,
        })
    }

    /// Brings the kernel to `state`.
    ///
    /// # Errors
    /// When the kernel state cannot be read or addresses cannot be changed.
    /// Failed IPVS operations do not fail the sync: each is logged with its
    /// object and counted, and the others apply.
    pub(crate) async fn sync(
        &mut self,
        state: &DesiredState,
        reason: Reason,
    ) -> anyhow::Result<SyncSummary> {
        let mut summary = SyncSummary::default();
        let wanted = reconcile::wanted::wanted(state.virtual_servers());
        let (observed, scope) = self.observe(&wanted, reason)?;
        let listed = self
            .link
            .addresses(&self.netlink)
            .await
            .with_context(|| format!("reading the addresses of {DUMMY_LINK}"))?;
        let bound: BTreeSet<IpAddr> = listed.list().into_iter().map(|(ip, _)| ip).collect();
        let wanted_addresses: BTreeSet<IpAddr> = state.addresses().collect();
        let owner = Ownership {
            exclude: self.exclude.clone(),
            dummy_addresses: bound.union(&wanted_addresses).copied().collect(),
            node_port_addresses: state.node().addresses.clone(),
            node_port_range: Ownership::DEFAULT_NODE_PORT_RANGE,
        };
        if let Some((last_wanted, last_addresses)) = &self.last {
            let last_wanted = scope.as_ref().map_or(last_wanted, |s| &s.last);
            let drift = reconcile::drift::ipvs(last_wanted, &observed, &owner);
            let drift_addresses = reconcile::drift::addresses(last_addresses, &bound);
            for (kind, n) in drift.into_iter().chain(drift_addresses) {
                SyncSummary::count(&mut summary.drift, kind, n);
            }
        }

        let plan = reconcile::ipvs::plan(
            scope.as_ref().map_or(&wanted, |s| &s.wanted),
            &observed,
            &owner,
            &mut self.draining,
            Instant::now(),
        );
        let results = tokio::task::block_in_place(|| self.client.apply(&plan.changes));
        for (change, result) in plan.changes.iter().zip(&results) {
            match result {
                Ok(()) => SyncSummary::count(&mut summary.applied, kind(change), 1),
                Err(e) => {
                    tracing::error!(error = %e, "IPVS operation failed");
                    SyncSummary::count(&mut summary.failed, kind(change), 1);
                }
            }
        }

        let addresses = reconcile::addresses::target(
            wanted_addresses.iter().copied(),
            &bound,
            &plan.draining_services,
        );
        let changes = self
            .link
            .sync_bound(&self.netlink, listed, &addresses)
            .await
            .with_context(|| format!("binding addresses to {DUMMY_LINK}"))?;
        SyncSummary::count(
            &mut summary.applied,
            "address",
            (changes.added.len() + changes.removed.len()) as u64,
        );
        summary.draining = self.draining.len();
        self.last = summary.failed.is_empty().then_some((wanted, addresses));
        Ok(summary)
    }

    /// Reads the IPVS table: all of it on a periodic sync (which is what
    /// finds and repairs drift) or when the last sync failed; on a change,
    /// only the virtual servers in the change's [`Scope`], which is then
    /// returned too. A change to one Service thus costs a few round trips
    /// instead of a dump of every real server.
    fn observe(
        &mut self,
        wanted: &Wanted,
        reason: Reason,
    ) -> anyhow::Result<(Vec<ipvs::ServiceWithDestinations>, Option<Scope>)> {
        let scope = match (&self.last, reason) {
            (Some((last, _)), Reason::Change) => Some(Scope::changed(last, wanted, &self.draining)),
            _ => None,
        };
        let observed = tokio::task::block_in_place(|| match &scope {
            Some(scope) => self.client.list_only(&scope.keys),
            None => self.client.list(),
        })
        .context("reading the IPVS table")?;
        Ok((observed, scope))
    }
}
