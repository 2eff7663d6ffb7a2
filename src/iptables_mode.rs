//! The iptables mode in the daemon: the rules and the dataplane are crate `dataplane`'s
//! ([`IptablesRules`], [`IptablesDataplane`]); here they are built from the settings, and
//! the rules printed for `--dry-run`.

use std::io::Write;

use dataplane::iptables::{IptablesDataplane, IptablesOptions, IptablesRules};
use desired::{NodeInfo, NodePortAddresses};
use iptables_mode::render;
use model::{Changes, Model};

use crate::proxier::{Proxier, Rules};
use dataplane::ProxyMode;
use settings::Settings;
use settings::cli::Output;

/// Whether the rules let IPv4 NodePorts answer on 127.0.0.0/8 (kube-proxy's
/// `localhostNodePorts && nodePortAddresses.ContainsIPv4Loopback()`).
fn localhost_node_ports(settings: &Settings) -> bool {
    settings.localhost_node_ports && settings.desired.node_port_addresses == NodePortAddresses::All
}

impl Rules for IptablesRules {
    fn new(settings: &Settings, node: NodeInfo, model: &Model) -> Self {
        let options = IptablesRules::options(settings.localhost_node_ports);
        IptablesRules::new(settings.desired.clone(), options, node, model)
    }

    fn update(&mut self, model: &Model, changes: &Changes, node: &NodeInfo) {
        IptablesRules::update(self, model, changes, node);
    }

    fn claims(&self) -> &desired::Claims {
        self.generator().claims()
    }

    fn log(&self, model: &Model, changes: &Changes) {
        let (services, slices) = model.len();
        tracing::info!(
            services,
            slices,
            changed_services = changes.services.len(),
            families = ?self.generator().families().collect::<Vec<_>>(),
            "desired iptables rules updated"
        );
    }

    fn size(&self) -> usize {
        self.chains()
    }

    fn ipvs(&self) -> Option<&desired::DesiredState> {
        None
    }

    fn print(&self, out: &mut dyn Write, output: Output) -> anyhow::Result<()> {
        let generator = self.generator();
        let mut families = serde_json::Map::new();
        for family in generator.families() {
            let tables = generator.tables(family)?;
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

impl Proxier for IptablesDataplane {
    const MODE: ProxyMode = ProxyMode::Iptables;

    fn start(settings: &Settings) -> impl FnOnce() -> anyhow::Result<Self> + Send + 'static {
        let options = IptablesOptions {
            localhost_node_ports: localhost_node_ports(settings),
        };
        move || Ok(IptablesDataplane::start(options)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(args: &[&str]) -> Settings {
        let cli = settings::cli::Cli::try_parse_from([&["kube-ipvs-proxy"], args].concat())
            .expect("flags");
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
}
