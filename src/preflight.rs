//! The live pre-flight, `--dry-run --diff`: the operations a takeover's first sync would
//! apply on this node, read from its IPVS table, `kube-ipvs0`, ipsets and iptables chains
//! through the IPVS dataplane's own sync ([`IpvsPreview`]), with nothing written.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use dataplane::ipvs::IpvsPreview;
use desired::DesiredState;

use dataplane::ProxyMode;
use settings::Settings;

/// The exit code when the node differs from what a sync would leave.
const DIFFERS: u8 = 1;

/// Opens the node's tables for reading, in IPVS mode only (the mode that adopts them).
///
/// # Errors
/// Another proxy mode configured, or the tables cannot be opened.
pub(crate) async fn open(settings: &Settings) -> anyhow::Result<IpvsPreview> {
    if settings.mode != ProxyMode::Ipvs {
        anyhow::bail!(
            "--diff compares the node with IPVS mode's state, but the proxy mode is {}",
            settings.mode
        );
    }
    IpvsPreview::open(&crate::ipvs_mode::options(settings))
        .await
        .context("opening the node's tables for the pre-flight")
}

/// Prints the operations a first sync to `state` would apply; exit code 0 when there are
/// none, 1 when there are.
///
/// # Errors
/// A table that cannot be read, or stdout that cannot be written.
pub(crate) async fn report(preview: IpvsPreview, state: &DesiredState) -> anyhow::Result<ExitCode> {
    let diff = preview
        .diff(state)
        .await
        .context("the pre-flight could not read the node")?;
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
