//! The live pre-flight, `--dry-run --diff`: the operations a takeover's first sync would
//! apply on this node, read from its IPVS table, `kube-ipvs0`, ipsets and iptables chains
//! through the IPVS dataplane's own sync ([`IpvsPreview`]), with nothing written.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use dataplane::ipvs::IpvsPreview;

use dataplane::ProxyMode;
use settings::Settings;

use crate::proxier::Rules;

/// The exit code when the node differs from what a sync would leave.
const DIFFERS: u8 = 1;

/// The node's tables open for reading, and its own addresses (where NodePorts listen).
pub(crate) struct Preview {
    tables: IpvsPreview,
    pub(crate) node_addresses: BTreeSet<IpAddr>,
}

/// Opens the node's tables for reading, in IPVS mode only (the mode that adopts them),
/// and reads the node's addresses; on tokio's blocking pool (the reads block).
///
/// # Errors
/// Another proxy mode configured, or the tables or addresses cannot be read.
pub(crate) async fn open(settings: &Settings) -> anyhow::Result<Preview> {
    if settings.mode != ProxyMode::Ipvs {
        anyhow::bail!(
            "--diff compares the node with IPVS mode's state, but the proxy mode is {}",
            settings.mode
        );
    }
    let options = crate::ipvs_mode::options(settings);
    tokio::task::spawn_blocking(move || {
        let mut tables =
            IpvsPreview::open(&options).context("opening the node's tables for the pre-flight")?;
        let node_addresses = tables.node_addresses()?;
        Ok(Preview {
            tables,
            node_addresses,
        })
    })
    .await?
}

/// Prints the operations a first sync to `state` (IPVS mode's) would apply, planned on
/// tokio's blocking pool; exit code 0 when there are none, 1 when there are.
///
/// # Errors
/// A state of another mode, a table that cannot be read, or stdout that cannot be
/// written.
pub(crate) async fn report<R: Rules + Send + Sync + 'static>(
    preview: Preview,
    state: Arc<R>,
) -> anyhow::Result<ExitCode> {
    let diff = tokio::task::spawn_blocking(move || match state.ipvs() {
        Some(state) => preview
            .tables
            .diff(state)
            .context("the pre-flight could not read the node"),
        None => anyhow::bail!("--diff needs IPVS mode's desired state"),
    })
    .await??;
    tracing::info!(
        operations = diff.ops().len(),
        "pre-flight: operations a takeover would apply"
    );
    std::io::stdout()
        .lock()
        .write_all(diff.to_string().as_bytes())?;
    Ok(if diff.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DIFFERS)
    })
}
