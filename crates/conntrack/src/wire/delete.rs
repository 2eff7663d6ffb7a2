//! `IPCTNL_MSG_CT_DELETE` of one entry, by original tuple and id.

use nfnetlink::Message;

use super::{SUBSYS, cta, msg, tuple};
use crate::{Family, Flow};

/// Deletes exactly `flow`. The original tuple is always present: a delete
/// without a tuple would flush the whole table.
pub(crate) fn request(flow: &Flow) -> Message {
    let mut m = Message::new(SUBSYS, msg::DELETE, Family::of(flow.orig.src).af());
    tuple::put(&mut m, cta::TUPLE_ORIG, flow.protocol, &flow.orig);
    if flow.zone != 0 {
        m.put_u16_be(cta::ZONE, flow.zone);
    }
    if let Some(id) = flow.id {
        m.put_u32_be(cta::ID, id);
    }
    m
}

#[cfg(test)]
#[cfg(target_endian = "little")] // golden bytes spell native-endian headers
mod tests {
    use super::*;

    /// The original tuple as `conntrack -D` sent it (strace capture, first
    /// 52 bytes of its 148-byte request; the tool adds the reply tuple,
    /// status, timeout and mark, which the kernel does not need), plus our
    /// `CTA_ID`.
    #[test]
    fn delete_by_original_tuple_and_id() {
        let flow = crate::wire::dump::tests::captured_flow();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[80u8, 0, 0, 0][..], &[0x02, 0x01], &[0, 0], &[9, 0, 0, 0], &[0, 0, 0, 0], // IPCTNL_MSG_CT_DELETE
            &[2, 0, 0, 0],                                          // nfgenmsg: AF_INET
            &[0x34, 0x00, 0x01, 0x80],                              // CTA_TUPLE_ORIG
            &[0x14, 0x00, 0x01, 0x80],                              //   CTA_TUPLE_IP
            &[0x08, 0x00, 0x01, 0x00, 0xc0, 0xa8, 0x07, 0x02],      //     src 192.168.7.2
            &[0x08, 0x00, 0x02, 0x00, 0x0a, 0x60, 0x00, 0x0a],      //     dst 10.96.0.10
            &[0x1c, 0x00, 0x02, 0x80],                              //   CTA_TUPLE_PROTO
            &[0x05, 0x00, 0x01, 0x00, 0x11, 0x00, 0x00, 0x00],      //     udp
            &[0x06, 0x00, 0x02, 0x00, 0x03, 0xe9, 0x00, 0x00],      //     sport 1001
            &[0x06, 0x00, 0x03, 0x00, 0x00, 0x35, 0x00, 0x00],      //     dport 53
            &[0x08, 0x00, 0x0c, 0x00, 0x6f, 0x02, 0x28, 0xac],      // CTA_ID
        ]
        .concat();
        assert_eq!(request(&flow).finish(9), want);
    }
}
