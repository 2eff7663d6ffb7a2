//! What kube-proxy sets up on the node before proxying, whatever the mode: the conntrack
//! sysctls (its `setupConntrack`, fatal when a write fails, but a read-only `/sys` only
//! leaves the hash size alone with a warning) and the process's `oom_score_adj` (a failure
//! is logged, as kube-proxy logs it).

use std::path::Path;

use anyhow::Context as _;
use hostnet::{ConntrackSettings, Ensured, HASHSIZE, Hashsize, Sysctls};

/// Sets the conntrack sysctls.
///
/// # Errors
/// The sysctl or file that could not be read or written.
pub(crate) fn conntrack(settings: &ConntrackSettings) -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let (ensured, hashsize) = settings
        .apply(&Sysctls::default(), Path::new(HASHSIZE), || {
            hostnet::sysfs_writable(&mounts)
        })
        .context("setting the conntrack sysctls (conntrack.*)")?;
    for (key, e) in ensured {
        if let Ensured::Changed { was } = e {
            let value = Sysctls::default().read(key).unwrap_or_default();
            tracing::info!(sysctl = %key, was, value, "set a conntrack sysctl");
        }
    }
    match hashsize {
        Hashsize::Unchanged => {}
        Hashsize::Raised { was, now } => {
            tracing::info!(was, now, "raised the conntrack hash size");
        }
        Hashsize::ReadOnlySysfs { wanted } => tracing::warn!(
            wanted,
            "/sys is read-only: the conntrack hash size is left as it is, problems may arise \
             later (if running Docker, see docker issue #24000)"
        ),
    }
    Ok(())
}

/// Sets this process's `oom_score_adj`, logging a failure.
pub(crate) fn oom_score_adj(value: i32) {
    match hostnet::set_oom_score_adj(Path::new("/proc/self/oom_score_adj"), value) {
        Ok(()) => tracing::debug!(value, "set oom_score_adj"),
        Err(e) => tracing::warn!(error = %e, "could not set oom_score_adj (oomScoreAdj)"),
    }
}
