//! One blocking netlink socket for the kernel-edge clients (`ipvs` over
//! generic netlink, `nfnetlink` for ipset and conntrack, `hostnet` over
//! rtnetlink): it owns the
//! socket's options, sequence numbers, pipelined batches whose answers are
//! matched to their requests by sequence number, dumps, and single
//! requests. It knows no protocol: callers encode each request (header
//! included) and decode the data messages handed back; the socket sets
//! each request's flags and sequence number.
//!
//! - [`Socket::batch`]: many requests per `sendmsg`, one result per request
//!   ([`Failure`] says which failed and why: the kernel's errno and
//!   extended-ack text in a [`Nack`], a lost answer, a socket error); the
//!   window rule is in the [`batch`](Socket::batch) docs and `batch.rs`.
//! - [`Socket::dump`]: a dump read to `NLMSG_DONE`, redone when the kernel
//!   flags it inconsistent (`NLM_F_DUMP_INTR`) or replies were dropped.
//! - [`Socket::request`]: one request, its data replies and its ack.
//!
//! The socket is generic over its [`Transport`]: [`Kernel`] is the real
//! one; the tests drive the same logic with a scripted kernel.
//!
//! ```no_run
//! # fn main() -> Result<(), netlink::Error> {
//! // Ask nfnetlink's ipset subsystem for its protocol version.
//! let mut socket = netlink::Socket::open(12)?; // NETLINK_NETFILTER
//! #[rustfmt::skip]
//! let mut request = vec![
//!     28, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr: IPSET_CMD_PROTOCOL
//!     2, 0, 0, 0,                                      // nfgenmsg: AF_INET
//!     5, 0, 1, 0, 6, 0, 0, 0,                          // IPSET_ATTR_PROTOCOL 6
//! ];
//! socket
//!     .request(&mut request, |frame| {
//!         println!("{:?}", frame.body);
//!         Ok::<_, std::convert::Infallible>(())
//!     })
//!     .map_err(|e| match e {
//!         netlink::Failed::Netlink(e) => e,
//!         netlink::Failed::Caller(never) => match never {},
//!     })?;
//! # Ok(()) }
//! ```

mod batch;
mod dump;
mod error;
mod frame;
mod socket;
mod transport;

#[cfg(test)]
mod tests;

pub use dump::DUMP_ATTEMPTS;
pub use error::{Error, Failed, Failure, KernelText, Nack};
pub use frame::{
    Body, Frame, Malformed, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTI, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, frames, stamp,
};
pub use socket::Socket;
pub use transport::{Kernel, Transport};
