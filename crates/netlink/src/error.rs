//! What can go wrong: the socket, the kernel's refusal of one request, a
//! reply that cannot be read, a dump that never reads consistently.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::frame::Malformed;

/// The kernel refused one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// Its position in the batch (0 for a single request or a dump).
    pub index: usize,
    /// Its sequence number.
    pub seq: u32,
    /// The errno, positive.
    pub errno: i32,
    /// The kernel's extended acknowledgement (`NLMSGERR_ATTR_MSG`), when
    /// it gave one.
    pub message: Option<String>,
}

impl fmt::Display for Nack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request {} (seq {}): {}",
            self.index,
            self.seq,
            io::Error::from_raw_os_error(self.errno)
        )?;
        match &self.message {
            Some(text) => write!(f, ": {text}"),
            None => Ok(()),
        }
    }
}

/// The kernel's extended-ack text of a refusal as the clients print it after
/// the errno: ` (kernel: <text>)`, or nothing when it gave none.
///
/// ```
/// let text = netlink::KernelText(Some("Invalid prefix length"));
/// assert_eq!(format!("Invalid argument{text}"), "Invalid argument (kernel: Invalid prefix length)");
/// assert_eq!(netlink::KernelText(None).to_string(), "");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelText<'a>(pub Option<&'a str>);

impl fmt::Display for KernelText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(text) => write!(f, " (kernel: {text})"),
            None => Ok(()),
        }
    }
}

/// A request, a dump or the socket failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (open, send, receive), or the kernel did not
    /// answer in time (`ErrorKind::TimedOut`).
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused the request.
    #[error("{0}")]
    Kernel(Nack),
    /// The kernel's reply, or the request handed in, is not netlink.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// The answer was dropped: the receive buffer overflowed (`ENOBUFS`).
    #[error("reply lost (netlink receive buffer overflow)")]
    Lost,
    /// A dump was inconsistent (`NLM_F_DUMP_INTR`, or replies dropped)
    /// on every attempt.
    #[error("dump interrupted {0} times in a row")]
    DumpInterrupted(u32),
}

impl Error {
    /// The kernel's errno (positive), if it refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel(nack) => Some(nack.errno),
            _ => None,
        }
    }
}

/// A request, or a dump's decoding, failed.
#[derive(Debug, thiserror::Error)]
pub enum Failed<E> {
    /// The netlink exchange failed.
    #[error(transparent)]
    Netlink(#[from] Error),
    /// The caller's handling of a data message failed.
    #[error("{0}")]
    Caller(E),
}

/// Why one request of a batch has no success to report.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The kernel refused it.
    #[error("{0}")]
    Refused(Nack),
    /// Its answer may have been dropped (`ENOBUFS`): it may or may not
    /// have been applied.
    #[error("acknowledgement lost (netlink receive buffer overflow); state unknown")]
    Lost,
    /// The socket failed before its answer came, or before it was sent.
    #[error("netlink socket: {0}")]
    Socket(Arc<io::Error>),
    /// Its encoder wrote no request: it was not sent.
    #[error("not sent")]
    NotSent,
}
