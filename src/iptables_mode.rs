//! The iptables dataplane: kube-proxy's iptables mode, for nodes without IPVS (the fallback)
//! or configured with `mode: iptables`.
//!
//! The rules come from crate `iptables-mode` ([`Generator`]); the one iptables writer (crate
//! `iptables`) applies them: one `iptables-restore --noflush` per table (filter, then nat)
//! and family (IPv6 through `ip6tables`), rewriting only the chains that differ. Periodic
//! syncs read the tables and repair drift ([`Iptables::sync`]); change-driven syncs plan
//! against what was last applied ([`Iptables::sync_from_applied`]), kube-proxy's partial
//! syncs. A family the node does not proxy gets the cleanup tables (nothing of ours).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;

use anyhow::Context as _;
use desired::{NodeInfo, NodePortAddresses};
use hostnet::sysctl::{BRIDGE_NF_CALL_IPTABLES, Check, Ensured, Key, Sysctls};
use iptables::{DesiredTable, Iptables, Plan};
use iptables_mode::{Generator, Options, Tables, render, writer_family};
use model::{Changes, IpFamily, Model};

use crate::cli::Output;
use crate::dataplane::{Flows, SyncSummary};
use crate::mode::ProxyMode;
use crate::proxier::{Dataplane, Rules};
use crate::runner::Reason;
use crate::settings::Settings;

/// `net.ipv4.conf.all.route_localnet`: lets DNAT'ed packets to 127.0.0.0/8 be routed, which
/// localhost NodePorts need.
const ROUTE_LOCALNET: Key = Key("net/ipv4/conf/all/route_localnet");
/// `net.netfilter.nf_conntrack_tcp_be_liberal`: when set, kube-proxy writes no INVALID drop.
const TCP_BE_LIBERAL: Key = Key("net/netfilter/nf_conntrack_tcp_be_liberal");

/// The iptables-mode desired state: the generator, the tables of both families it gives
/// (built once per change, applied by every sync until the next), and a counter of its
/// updates (to tell a periodic sync's repairs, drift, from changes).
#[derive(Debug)]
pub(crate) struct IptablesRules {
    generator: Generator,
    tables: Result<Vec<Tables>, iptables_mode::Error>,
    generation: u64,
}

/// kube-proxy's iptables-mode options from the settings and the node: localhost NodePorts,
/// and whether the node's conntrack is liberal with TCP (read as kube-proxy reads it).
fn options(settings: &Settings) -> Options {
    let liberal = Sysctls::default()
        .read(TCP_BE_LIBERAL)
        .is_ok_and(|v| v != "0");
    Options {
        localhost_node_ports: settings.localhost_node_ports,
        conntrack_tcp_be_liberal: liberal,
    }
}

/// Whether the rules let IPv4 NodePorts answer on 127.0.0.0/8 (kube-proxy's
/// `localhostNodePorts && nodePortAddresses.ContainsIPv4Loopback()`).
fn localhost_node_ports(settings: &Settings) -> bool {
    settings.localhost_node_ports && settings.desired.node_port_addresses == NodePortAddresses::All
}

impl IptablesRules {
    /// The tables of every family: the node's own, and the cleanup tables of the other.
    fn build(generator: &Generator) -> Result<Vec<Tables>, iptables_mode::Error> {
        IpFamily::ALL
            .into_iter()
            .map(|f| generator.tables(f))
            .collect()
    }

    fn log_rejected(&self) {
        for e in self.generator.rejected() {
            tracing::warn!(error = %e, "Service left out of the iptables rules");
        }
    }
}

impl Rules for IptablesRules {
    fn new(settings: &Settings, node: NodeInfo, model: &Model) -> Self {
        let generator = Generator::new(settings.desired.clone(), options(settings), node, model);
        let rules = IptablesRules {
            tables: IptablesRules::build(&generator),
            generator,
            generation: 0,
        };
        rules.log_rejected();
        rules
    }

    fn update(&mut self, model: &Model, changes: &Changes, node: &NodeInfo) {
        self.generator.update(model, changes, node);
        // The old tables go before the new ones are built: one copy at a time.
        self.tables = Ok(Vec::new());
        self.tables = IptablesRules::build(&self.generator);
        self.generation += 1;
        self.log_rejected();
    }

    fn claims(&self) -> &desired::Claims {
        self.generator.claims()
    }

    fn log(&self, model: &Model, changes: &Changes) {
        let (services, slices) = model.len();
        tracing::info!(
            services,
            slices,
            changed_services = changes.services.len(),
            families = ?self.generator.families().collect::<Vec<_>>(),
            "desired iptables rules updated"
        );
    }

    fn size(&self) -> usize {
        self.tables
            .iter()
            .flatten()
            .map(|t| t.nat.chains.len() + t.filter.chains.len())
            .sum()
    }

    fn print(&self, out: &mut dyn Write, output: Output) -> anyhow::Result<()> {
        let mut families = serde_json::Map::new();
        for family in self.generator.families() {
            let tables = self.generator.tables(family)?;
            let text: Vec<String> = tables.iter().map(render).collect();
            match output {
                Output::Text => {
                    writeln!(out, "# {} ({family:?})", tables.family.command())?;
                    for t in &text {
                        out.write_all(t.as_bytes())?;
                    }
                }
                Output::Json => {
                    let by_table = tables
                        .iter()
                        .zip(text)
                        .map(|(t, text)| (t.table.as_str().to_owned(), text.into()));
                    families.insert(
                        format!("{family:?}"),
                        serde_json::Value::Object(by_table.collect()),
                    );
                }
            }
        }
        if output == Output::Json {
            serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "iptables": families }))?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// The iptables writers of the node: IPv4 always, IPv6 when `ip6tables` works.
#[derive(Debug)]
pub(crate) struct IptablesDataplane {
    writers: Vec<Iptables>,
    /// For reading the node's addresses.
    netlink: rtnetlink::Handle,
    /// The rules' generation after the last sync that applied every table.
    synced: Option<u64>,
    /// Stale UDP conntrack flows.
    flows: Flows,
}

impl Dataplane for IptablesDataplane {
    type Rules = IptablesRules;
    const MODE: ProxyMode = ProxyMode::Iptables;

    async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let v4 = Iptables::detect(writer_family(IpFamily::V4))
            .context("the iptables mode needs iptables")?;
        let mut writers = vec![v4];
        match Iptables::detect(writer_family(IpFamily::V6)) {
            Ok(v6) => writers.push(v6),
            Err(e) => tracing::warn!(error = %e, "no ip6tables: IPv6 Services are not proxied"),
        }
        let sysctls = Sysctls::default();
        if localhost_node_ports(settings) {
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
        let (connection, netlink, _) =
            rtnetlink::new_connection().context("opening an rtnetlink socket")?;
        tokio::spawn(connection);
        Ok(IptablesDataplane {
            writers,
            netlink,
            synced: None,
            flows: Flows::default(),
        })
    }

    async fn node_addresses(&self) -> anyhow::Result<BTreeSet<IpAddr>> {
        // No link to leave out: this mode binds no Service address.
        hostnet::addresses::node_addresses(&self.netlink, 0)
            .await
            .context("reading the node's addresses")
    }

    async fn sync(&mut self, rules: &IptablesRules, reason: Reason) -> SyncSummary {
        let full = reason == Reason::Periodic;
        // Nothing changed since everything was last applied: whatever a full sync rewrites
        // was changed behind our back.
        let unchanged = self.synced == Some(rules.generation);
        let mut summary = SyncSummary::default();
        let all = match &rules.tables {
            Ok(all) => all,
            Err(e) => {
                let e = anyhow::anyhow!("generating the iptables rules: {e}");
                summary.broken("iptables", &e);
                self.synced = None;
                return summary;
            }
        };
        let started = std::time::Instant::now();
        for tables in all {
            let Some(writer) = self
                .writers
                .iter_mut()
                .find(|w| w.family() == tables.family)
            else {
                continue;
            };
            for table in tables.iter() {
                match tokio::task::block_in_place(|| apply(writer, table, full)) {
                    Ok(Some(plan)) => count(&mut summary, &plan, unchanged),
                    Ok(None) => {}
                    Err(e) => {
                        let e = anyhow::Error::from(e).context(format!(
                            "applying the {} {} table",
                            tables.family.command(),
                            table.table
                        ));
                        summary.broken("iptables", &e);
                    }
                }
            }
        }
        summary.timed("iptables", started);
        // After the rules: new flows already go to the endpoints that remain.
        let started = std::time::Instant::now();
        if let Err(e) = self
            .flows
            .sync(rules.generator.udp_endpoints(), full, &mut summary)
        {
            summary.broken("conntrack", &e);
        }
        summary.timed("conntrack", started);
        self.synced = summary.complete().then_some(rules.generation);
        summary
    }
}

/// One table: planned against a fresh read on a full sync, else against what was applied.
fn apply(
    writer: &mut Iptables,
    table: &DesiredTable,
    full: bool,
) -> Result<Option<Plan>, iptables::Error> {
    if full {
        writer.sync(table)
    } else {
        writer.sync_from_applied(table)
    }
}

/// Counts what a restore did; as drift too when nothing had changed since the last sync.
fn count(summary: &mut SyncSummary, plan: &Plan, drift: bool) {
    let chains = plan.rewritten.len() + plan.deleted.len();
    let jumps = plan.jumps_inserted.len() + plan.rules_deleted.len();
    summary.applied("iptables_chain", chains);
    summary.applied("iptables_jump", jumps);
    if drift {
        summary.drift([
            ("iptables_chain", chains as u64),
            ("iptables_jump", jumps as u64),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use iptables::{Chain, Jump, Learned, Rule, Table, TableState};

    fn settings(args: &[&str]) -> Settings {
        let cli =
            crate::cli::Cli::try_parse_from([&["kube-ipvs-proxy"], args].concat()).expect("flags");
        Settings::resolve(&cli).expect("settings")
    }

    #[test]
    fn localhost_node_ports_only_with_every_node_address() {
        assert!(localhost_node_ports(&settings(&[])));
        assert!(!localhost_node_ports(&settings(&[
            "--nodeport-addresses",
            "192.168.0.0/16"
        ])));
    }

    /// The plan that creates one chain and one jump in an empty nat table.
    fn first_plan() -> Plan {
        let mut desired = DesiredTable::new(Table::Nat, iptables_mode::ownership(Table::Nat));
        desired.chains.push(Chain {
            name: "KUBE-SERVICES".parse().expect("name"),
            rules: vec![Rule::parse("-j RETURN").expect("rule")],
        });
        desired.jumps.push(Jump {
            from: "PREROUTING".parse().expect("name"),
            rule: Rule::parse("-j KUBE-SERVICES").expect("rule"),
        });
        iptables::plan(
            &TableState::empty(Table::Nat),
            &desired,
            &Learned::default(),
        )
        .expect("plan")
        .expect("changes")
    }

    #[test]
    fn a_restore_counts_as_drift_only_when_nothing_changed_since_the_last_sync() {
        let plan = first_plan();
        let mut summary = SyncSummary::default();
        count(&mut summary, &plan, false);
        let expected =
            std::collections::BTreeMap::from([("iptables_chain", 1), ("iptables_jump", 1)]);
        assert_eq!(summary.applied, expected);
        assert!(summary.drift.is_empty());
        count(&mut summary, &plan, true);
        assert_eq!(summary.drift, expected);
        assert_eq!(summary.applied.get("iptables_chain"), Some(&2));
    }
}
