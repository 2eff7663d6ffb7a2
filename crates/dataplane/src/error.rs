//! What went wrong in the kernel step: the operation, and the typed error of
//! the client that failed.

use std::fmt;

/// A failed operation on one kernel table, with what it was doing
/// (`reading the IPVS table`, `binding addresses to kube-ipvs0`...).
#[derive(Debug)]
pub struct Error {
    op: String,
    cause: Box<Cause>,
}

/// The client error under an [`Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Cause {
    /// The IPVS client.
    #[error(transparent)]
    Ipvs(#[from] ipvs::Error),
    /// `kube-ipvs0` and the node's addresses (rtnetlink).
    #[error(transparent)]
    Link(#[from] hostnet::LinkError),
    /// Kernel modules.
    #[error(transparent)]
    Module(#[from] hostnet::ModuleError),
    /// Sysctls.
    #[error(transparent)]
    Sysctl(#[from] hostnet::SysctlError),
    /// The ipset client.
    #[error(transparent)]
    Ipset(#[from] ipset::Error),
    /// The iptables writer, or an IPVS-mode rule it refused.
    #[error(transparent)]
    Iptables(#[from] iptables::Error),
    /// The iptables mode's rule generator (its error is kept with the rules).
    #[error(transparent)]
    IptablesMode(#[from] std::sync::Arc<iptables_mode::Error>),
    /// The conntrack client.
    #[error(transparent)]
    Conntrack(#[from] conntrack::Error),
    /// Tables a read-only sync could not read (each logged with its cause).
    #[error("could not read: {0}")]
    Unread(String),
    /// A part of the sync that ran on a thread of its own panicked.
    #[error("it panicked")]
    Panicked,
    /// The process could not start a thread.
    #[error(transparent)]
    Os(#[from] std::io::Error),
}

impl Error {
    /// An error of `op`.
    pub fn new(op: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error {
            op: op.into(),
            cause: Box::new(cause.into()),
        }
    }

    /// What was being done.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// Why it failed.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.cause)
    }
}

impl std::error::Error for Error {}

/// Names the operation of a client's failure, as `anyhow::Context` would.
pub(crate) trait Context<T> {
    /// The error as an [`Error`] of `op`.
    fn context(self, op: &str) -> Result<T, Error>;

    /// The error as an [`Error`] of the operation `op` builds.
    fn with_context(self, op: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T, E: Into<Cause>> Context<T> for Result<T, E> {
    fn context(self, op: &str) -> Result<T, Error> {
        self.map_err(|e| Error::new(op, e))
    }

    fn with_context(self, op: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| Error::new(op(), e))
    }
}
