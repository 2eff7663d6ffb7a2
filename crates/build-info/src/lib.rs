//! What this build is: the workspace version and the git commit it was built from
//! (`KUBE_IPVS_PROXY_GIT_COMMIT`, else `git rev-parse`, else `unknown`), recorded once by the
//! build script so `--version` and `kubernetes_build_info` name the same build.

/// The version, as in every crate's `Cargo.toml` (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The major version.
pub const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");

/// The minor version.
pub const MINOR: &str = env!("CARGO_PKG_VERSION_MINOR");

/// The git commit (12 hex digits), or `unknown`.
pub const COMMIT: &str = env!("GIT_COMMIT");
