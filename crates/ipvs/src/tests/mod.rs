//! Golden-byte tests: exact request bytes for representative operations,
//! and kernel replies (laid out as Linux 6.1's `ip_vs_ctl.c` writes them)
//! decoded. Little-endian hosts only: host-order fields are written out.
#![cfg(target_endian = "little")]

mod replies;
mod requests;

use netlink_packet_core::DecodeError;

use crate::message::{CmdAttr, IpvsMessage, genl, parse_data};

/// What one received netlink message says, decoded as the client decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `NLMSG_ERROR` with 0: the request succeeded.
    Ack,
    /// `NLMSG_ERROR` with a negative errno (stored positive).
    Error(i32),
    /// `NLMSG_DONE`: end of a dump, with the dump's error if it failed.
    Done(i32),
    /// A data message.
    Data(IpvsMessage),
    /// Anything else (`NLMSG_NOOP`...).
    Ignored,
}

/// One received message with the header fields the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) seq: u32,
    /// `NLM_F_MULTI` was set (part of a dump).
    pub(crate) multi: bool,
    pub(crate) reply: Reply,
}

/// Splits a datagram into its messages (with the shared socket's framing)
/// and decodes them.
pub(crate) fn decode_all(buf: &[u8]) -> Result<Vec<Received>, DecodeError> {
    netlink::frames(buf)
        .map(|frame| {
            let frame = frame.map_err(|e| DecodeError::from(e.to_string()))?;
            let reply = match frame.body {
                netlink::Body::Data { payload, .. } => {
                    let (cmd, attrs) = genl(payload)?;
                    Reply::Data(parse_data(cmd, attrs)?)
                }
                netlink::Body::Ack => Reply::Ack,
                netlink::Body::Error { errno, .. } => Reply::Error(errno),
                netlink::Body::Done(errno) => Reply::Done(errno),
                _ => Reply::Ignored,
            };
            Ok(Received {
                seq: frame.seq,
                multi: frame.flags & netlink::NLM_F_MULTI != 0,
                reply,
            })
        })
        .collect()
}

/// The IPVS family id used in the golden messages (any id works).
const FAMILY: u16 = 0x24;

/// The data messages of a datagram, checking their header flags.
fn data(received: &[Received], multi: bool) -> Vec<&[CmdAttr]> {
    received
        .iter()
        .filter_map(|r| match &r.reply {
            Reply::Data(msg) => {
                assert_eq!(r.multi, multi, "NLM_F_MULTI of {r:?}");
                Some(msg.cmd_attrs())
            }
            _ => None,
        })
        .collect()
}

/// Decodes one datagram, which must be well formed.
fn decode(raw: &[u8]) -> Vec<Received> {
    decode_all(raw).expect("golden bytes decode")
}
