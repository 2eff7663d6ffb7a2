//! Golden-byte tests: exact request bytes for representative operations,
//! and kernel replies (laid out as Linux 6.1's `ip_vs_ctl.c` writes them)
//! decoded. Little-endian hosts only: host-order fields are written out.
#![cfg(target_endian = "little")]

mod replies;
mod requests;

use crate::message::{CmdAttr, Received, Reply, decode_all};

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
