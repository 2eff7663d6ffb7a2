//! The two proxy modes behind one interface, for the pipeline and the sync loop: each mode
//! has its desired state ([`Rules`], computed from the model and the settings) and its
//! dataplane ([`Proxier`], crate `dataplane`'s, started from the settings). The loop is generic
//! over the mode, so a mode's state can only ever reach its own dataplane.

use std::io::Write;

use dataplane::Dataplane;
use desired::NodeInfo;
use model::{Changes, Model};

use dataplane::ProxyMode;
use settings::Settings;
use settings::cli::Output;

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

    /// The state as IPVS mode's, for the live pre-flight (`--dry-run --diff`) and the names
    /// of the IPVS statistics; `None` in another mode.
    fn ipvs(&self) -> Option<&desired::DesiredState>;

    /// Writes the state for `--dry-run`.
    ///
    /// # Errors
    /// When `out` cannot be written or the state cannot be rendered.
    fn print(&self, out: &mut dyn Write, output: Output) -> anyhow::Result<()>;
}

/// A mode: its dataplane, started from the settings on the dataplane's thread.
pub(crate) trait Proxier:
    Dataplane<State: Rules + Send + Sync + 'static> + Sized + 'static
{
    /// The mode, for `/proxyMode`, the metric and the log.
    const MODE: ProxyMode;

    /// What prepares the node (modules, sysctls, tools) for this mode and makes the
    /// dataplane, from `settings`; it runs on the dataplane's thread and blocks.
    ///
    /// The function fails when the mode cannot run on this node.
    fn start(settings: &Settings) -> impl FnOnce() -> anyhow::Result<Self> + Send + 'static;
}
