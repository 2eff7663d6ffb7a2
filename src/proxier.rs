//! The two proxy modes behind one interface, for the pipeline and the sync loop: each mode
//! has its desired state ([`Rules`], computed from the model) and its dataplane
//! ([`Dataplane`], which brings the kernel to that state). The loop is generic over the
//! dataplane, so a mode's state can only ever reach its own dataplane.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;

use desired::{DesiredState, NodeInfo};
use model::{Changes, Model};

use crate::cli::Output;
use crate::dataplane::{IpvsDataplane, IpvsOptions, SyncSummary};
use crate::mode::ProxyMode;
use crate::runner::Reason;
use crate::settings::Settings;

/// A mode's desired state, kept up to date with the model.
pub(crate) trait Rules: Sized {
    /// The state for `model` from scratch, once the source delivered a complete view.
    fn new(settings: &Settings, node: NodeInfo, model: &Model) -> Self;

    /// Brings the state up to date after `changes`, with `node` as this node now is.
    fn update(&mut self, model: &Model, changes: &Changes, node: &NodeInfo);

    /// Logs a summary of the state after a change (`changes`).
    fn log(&self, model: &Model, changes: &Changes);

    /// Who has each address that Services claim ([`desired::claims`]: the same contest in
    /// both modes).
    fn claims(&self) -> &desired::Claims;

    /// How many kernel objects the state asks for (virtual servers, chains), for log lines.
    fn size(&self) -> usize;

    /// Writes the state for `--dry-run`.
    ///
    /// # Errors
    /// When `out` cannot be written or the state cannot be rendered.
    fn print(&self, out: &mut dyn Write, output: Output) -> anyhow::Result<()>;
}

/// A mode's dataplane: what the sync loop calls.
pub(crate) trait Dataplane: Sized {
    /// The desired state it programs.
    type Rules: Rules;

    /// The mode, for `/proxyMode`, the metric and the log.
    const MODE: ProxyMode;

    /// Prepares the node (modules, sysctls, tools) for this mode.
    ///
    /// # Errors
    /// When the mode cannot run on this node.
    async fn start(settings: &Settings) -> anyhow::Result<Self>;

    /// Brings the kernel to `rules`; a [`Reason::Periodic`] sync also reads back and repairs
    /// what others changed. Nothing fails the sync as a whole: failed operations are counted
    /// in the summary, and a part that could not be synced at all is recorded as broken
    /// (then health does not advance).
    async fn sync(&mut self, rules: &Self::Rules, reason: Reason) -> SyncSummary;

    /// The node's own interface addresses (NodePorts listen there).
    ///
    /// # Errors
    /// When they cannot be listed.
    async fn node_addresses(&self) -> anyhow::Result<BTreeSet<IpAddr>>;
}

impl Rules for DesiredState {
    fn new(settings: &Settings, node: NodeInfo, model: &Model) -> Self {
        DesiredState::new(settings.desired.clone(), node, model)
    }

    fn update(&mut self, model: &Model, changes: &Changes, node: &NodeInfo) {
        DesiredState::update(self, model, changes, node);
    }

    fn log(&self, model: &Model, changes: &Changes) {
        let (services, slices) = model.len();
        tracing::info!(
            services,
            slices,
            changed_services = changes.services.len(),
            virtual_servers = self.virtual_servers().count(),
            "desired state updated"
        );
    }

    fn claims(&self) -> &desired::Claims {
        DesiredState::claims(self)
    }

    fn size(&self) -> usize {
        self.virtual_servers().count()
    }

    fn print(&self, out: &mut dyn Write, output: Output) -> anyhow::Result<()> {
        match output {
            Output::Text => out.write_all(desired::render::text(self).as_bytes())?,
            Output::Json => {
                serde_json::to_writer_pretty(&mut *out, &desired::render::json(self))?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

impl Dataplane for IpvsDataplane {
    type Rules = DesiredState;
    const MODE: ProxyMode = ProxyMode::Ipvs;

    async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let options = IpvsOptions {
            exclude_cidrs: settings.exclude_cidrs.clone(),
            strict_arp: settings.strict_arp,
            node_port_range: settings.node_port_range.clone(),
            timeouts: settings.ipvs_timeouts,
            schedulers: vec![settings.desired.scheduler.to_string()],
        };
        let dataplane = IpvsDataplane::start(&options).await?;
        tracing::info!("IPVS dataplane ready on {}", crate::dataplane::DUMMY_LINK);
        Ok(dataplane)
    }

    async fn sync(&mut self, rules: &DesiredState, reason: Reason) -> SyncSummary {
        IpvsDataplane::sync(self, rules, reason == Reason::Periodic).await
    }

    async fn node_addresses(&self) -> anyhow::Result<BTreeSet<IpAddr>> {
        IpvsDataplane::node_addresses(self).await
    }
}
