//! The iptables mode: kube-proxy's iptables mode, for nodes without IPVS (the fallback)
//! or configured with `mode: iptables`.
//!
//! The rules come from crate `iptables-mode` ([`Generator`]); the one iptables helper
//! ([`crate::tables`]) applies them: one `iptables-restore --noflush` per table (filter,
//! then nat) and family (IPv6 through `ip6tables`), rewriting only the chains that differ.
//! A family the node does not proxy gets the cleanup tables (nothing of ours).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use conntrack::Conntrack;
use desired::{Config, NodeInfo};
use hostnet::sysctl::{
    BRIDGE_NF_CALL_IPTABLES, Check, Ensured, ROUTE_LOCALNET, Sysctls, TCP_BE_LIBERAL,
};
use iptables::Iptables;
use iptables_mode::{Generator, Options, Tables, writer_family};
use model::{Changes, IpFamily, Model};

use crate::conntrack::{FlowTable, Flows};
use crate::error::{Context as _, Error};
use crate::summary::{Part, SyncSummary};
use crate::tables::{IptablesPart, Writer};

/// The iptables-mode desired state: the generator, the tables of both families it gives
/// (built once per change, applied by every sync until the next), and a counter of its
/// updates (to tell a periodic sync's repairs, drift, from changes).
#[derive(Debug)]
pub struct IptablesRules {
    generator: Generator,
    tables: Result<Vec<Tables>, Arc<iptables_mode::Error>>,
    generation: u64,
}

impl IptablesRules {
    /// The rules for `model` from scratch.
    pub fn new(config: Config, options: Options, node: NodeInfo, model: &Model) -> Self {
        let generator = Generator::new(config, options, node, model);
        let rules = IptablesRules {
            tables: IptablesRules::build(&generator),
            generator,
            generation: 0,
        };
        rules.log_rejected();
        rules
    }

    /// kube-proxy's iptables-mode options: `localhost_node_ports` as configured, and
    /// whether the node's conntrack is liberal with TCP (read as kube-proxy reads it).
    pub fn options(localhost_node_ports: bool) -> Options {
        let liberal = Sysctls::default()
            .read(TCP_BE_LIBERAL)
            .is_ok_and(|v| v != "0");
        Options {
            localhost_node_ports,
            conntrack_tcp_be_liberal: liberal,
        }
    }

    /// Brings the rules up to date after `changes`, with `node` as this node now is.
    pub fn update(&mut self, model: &Model, changes: &Changes, node: &NodeInfo) {
        self.generator.update(model, changes, node);
        // The old tables go before the new ones are built: one copy at a time.
        self.tables = Ok(Vec::new());
        self.tables = IptablesRules::build(&self.generator);
        self.generation += 1;
        self.log_rejected();
    }

    /// The generator, for printing the rules.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// How many chains the rules hold.
    pub fn chains(&self) -> usize {
        self.tables
            .iter()
            .flatten()
            .map(|t| t.nat.chains.len() + t.filter.chains.len())
            .sum()
    }

    /// The tables of every family: the node's own, and the cleanup tables of the other.
    fn build(generator: &Generator) -> Result<Vec<Tables>, Arc<iptables_mode::Error>> {
        IpFamily::ALL
            .into_iter()
            .map(|f| generator.tables(f))
            .collect::<Result<_, _>>()
            .map_err(Arc::new)
    }

    fn log_rejected(&self) {
        for e in self.generator.rejected() {
            tracing::warn!(error = %e, "Service left out of the iptables rules");
        }
    }
}

/// What the iptables dataplane needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct IptablesOptions {
    /// Whether IPv4 NodePorts answer on 127.0.0.0/8, so `route_localnet` must be set.
    pub localhost_node_ports: bool,
}

/// The iptables dataplane: the tables and flows it syncs, and the node's addresses.
#[derive(Debug)]
pub struct IptablesDataplane {
    kernel: IptablesSync,
    /// For reading the node's addresses.
    netlink: hostnet::Rtnl,
}

impl IptablesDataplane {
    /// Finds the iptables tools, sets `route_localnet` when localhost NodePorts need it.
    ///
    /// # Errors
    /// When there is no IPv4 `iptables`, or `route_localnet` cannot be set.
    pub fn start(options: IptablesOptions) -> Result<Self, Error> {
        let v4 = Iptables::detect(writer_family(IpFamily::V4))
            .context("the iptables mode needs iptables")?;
        let mut writers = vec![v4];
        match Iptables::detect(writer_family(IpFamily::V6)) {
            Ok(v6) => writers.push(v6),
            Err(e) => tracing::warn!(error = %e, "no ip6tables: IPv6 Services are not proxied"),
        }
        let sysctls = Sysctls::default();
        if options.localhost_node_ports {
            let ensured = sysctls.ensure(ROUTE_LOCALNET, "1").with_context(|| {
                format!("setting {ROUTE_LOCALNET}=1 for NodePorts on localhost (or set iptables.localhostNodePorts: false)")
            })?;
            if let Ensured::Changed { was } = ensured {
                tracing::info!(
                    was,
                    "set {ROUTE_LOCALNET}=1 so NodePorts answer on localhost"
                );
            }
        }
        match sysctls.check(BRIDGE_NF_CALL_IPTABLES, "1") {
            Ok(Check::Expected) => {}
            Ok(_) | Err(_) => tracing::info!(
                "br_netfilter missing or {BRIDGE_NF_CALL_IPTABLES} unset: bridged pod traffic \
                 bypasses the Service rules"
            ),
        }
        tracing::info!(
            backend = ?writers[0].backend(),
            families = writers.len(),
            "iptables dataplane ready"
        );
        let netlink = hostnet::Rtnl::open().context("starting the iptables dataplane")?;
        Ok(IptablesDataplane {
            kernel: IptablesSync::new(writers, Flows::default()),
            netlink,
        })
    }
}

/// What an iptables-mode sync programs: the tables of every family that has a writer,
/// then stale UDP flows.
#[derive(Debug)]
pub(crate) struct IptablesSync<W = Iptables, C = Conntrack> {
    writers: Vec<W>,
    /// The rules' generation after the last sync that applied every table.
    synced: Option<u64>,
    /// Stale UDP conntrack flows.
    flows: Flows<C>,
}

impl<W: Writer, C: FlowTable> IptablesSync<W, C> {
    /// A sync with these writers (one per family) and conntrack table.
    pub(crate) fn new(writers: Vec<W>, flows: Flows<C>) -> Self {
        IptablesSync {
            writers,
            synced: None,
            flows,
        }
    }

    /// Applies every family's tables, then cleans up stale UDP flows.
    pub(crate) fn sync(&mut self, rules: &IptablesRules, full: bool) -> SyncSummary {
        // Nothing changed since everything was last applied: whatever a full sync rewrites
        // was changed behind our back.
        let unchanged = self.synced == Some(rules.generation);
        let mut summary = SyncSummary::default();
        let mut part = IptablesPart::new(&mut summary, full);
        match &rules.tables {
            Ok(all) => {
                for tables in all {
                    let Some(writer) = self
                        .writers
                        .iter_mut()
                        .find(|w| w.family() == tables.family)
                    else {
                        continue;
                    };
                    for table in tables.iter() {
                        part.apply(writer, table, unchanged);
                    }
                }
            }
            Err(e) => part.fail(Error::new("generating the iptables rules", Arc::clone(e))),
        }
        part.finish();
        // After the rules: new flows already go to the endpoints that remain.
        let started = Instant::now();
        if let Err(e) = self
            .flows
            .sync(rules.generator.udp_endpoints(), full, &mut summary)
        {
            summary.broken(Part::Conntrack, &e);
        }
        summary.timed("conntrack", started);
        self.synced = summary.complete().then_some(rules.generation);
        summary
    }
}

impl crate::Dataplane for IptablesDataplane {
    type State = IptablesRules;

    fn sync(&mut self, rules: &IptablesRules, full: bool) -> SyncSummary {
        self.kernel.sync(rules, full)
    }

    fn node_addresses(&mut self) -> Result<BTreeSet<IpAddr>, Error> {
        // No link to leave out: this mode binds no Service address.
        hostnet::addresses::node_addresses(&mut self.netlink, 0)
            .context("reading the node's addresses")
    }
}

#[cfg(test)]
mod tests;
