//! `IPCTNL_MSG_CT_GET` dumps: the request and the flows in the replies.

use nfnetlink::{Attrs, Message, ParseError};

use super::{SUBSYS, cta, msg, tuple};
use crate::{Family, Flow};

/// A dump of every entry of one family's table.
pub(crate) fn request(family: Family) -> Message {
    Message::new(SUBSYS, msg::GET, family.af())
}

/// Parses one reply message (attributes after `nfgenmsg`) into a flow.
pub(crate) fn parse(attrs: &[u8]) -> Result<Flow, ParseError> {
    let (mut orig, mut reply, mut id, mut zone) = (None, None, None, 0);
    for a in Attrs::new(attrs) {
        let a = a?;
        match a.kind() {
            cta::TUPLE_ORIG => orig = Some(tuple::parse(a.nested())?),
            cta::TUPLE_REPLY => reply = Some(tuple::parse(a.nested())?),
            cta::ID => id = Some(a.u32_be()?),
            cta::ZONE => zone = a.u16_be()?,
            _ => {}
        }
    }
    let ((protocol, orig), (_, reply)) = orig
        .zip(reply)
        .ok_or(ParseError("conntrack entry without both tuples"))?;
    Ok(Flow {
        protocol,
        orig,
        reply,
        zone,
        id,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Tuple, flow::proto};

    /// One entry of `conntrack -L -p udp` on kernel 6.18 (strace capture of
    /// conntrack 1.4.7), after `nlmsghdr` and `nfgenmsg`:
    /// `udp 17 29 src=192.168.7.2 dst=10.96.0.10 sport=1001 dport=53 [UNREPLIED]
    /// src=10.244.1.5 dst=192.168.7.2 sport=53 dport=1001 mark=0 use=2`.
    #[rustfmt::skip]
    const ENTRY: &[u8] = &[
        0x34, 0x00, 0x01, 0x80,                         // CTA_TUPLE_ORIG
        0x14, 0x00, 0x01, 0x80,                         //   CTA_TUPLE_IP
        0x08, 0x00, 0x01, 0x00, 0xc0, 0xa8, 0x07, 0x02, //     CTA_IP_V4_SRC 192.168.7.2
        0x08, 0x00, 0x02, 0x00, 0x0a, 0x60, 0x00, 0x0a, //     CTA_IP_V4_DST 10.96.0.10
        0x1c, 0x00, 0x02, 0x80,                         //   CTA_TUPLE_PROTO
        0x05, 0x00, 0x01, 0x00, 0x11, 0x00, 0x00, 0x00, //     CTA_PROTO_NUM udp
        0x06, 0x00, 0x02, 0x00, 0x03, 0xe9, 0x00, 0x00, //     CTA_PROTO_SRC_PORT 1001
        0x06, 0x00, 0x03, 0x00, 0x00, 0x35, 0x00, 0x00, //     CTA_PROTO_DST_PORT 53
        0x34, 0x00, 0x02, 0x80,                         // CTA_TUPLE_REPLY
        0x14, 0x00, 0x01, 0x80,
        0x08, 0x00, 0x01, 0x00, 0x0a, 0xf4, 0x01, 0x05, //     10.244.1.5
        0x08, 0x00, 0x02, 0x00, 0xc0, 0xa8, 0x07, 0x02, //     192.168.7.2
        0x1c, 0x00, 0x02, 0x80,
        0x05, 0x00, 0x01, 0x00, 0x11, 0x00, 0x00, 0x00,
        0x06, 0x00, 0x02, 0x00, 0x00, 0x35, 0x00, 0x00, //     sport 53
        0x06, 0x00, 0x03, 0x00, 0x03, 0xe9, 0x00, 0x00, //     dport 1001
        0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0xa8, // CTA_STATUS
        0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // CTA_MARK
        0x08, 0x00, 0x0c, 0x00, 0x6f, 0x02, 0x28, 0xac, // CTA_ID
        0x08, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x02, // CTA_USE
        0x08, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x1d, // CTA_TIMEOUT 29
    ];

    pub(crate) fn captured_flow() -> Flow {
        let client = "192.168.7.2".parse().unwrap();
        Flow {
            protocol: proto::UDP,
            orig: Tuple {
                src: client,
                dst: "10.96.0.10".parse().unwrap(),
                src_port: 1001,
                dst_port: 53,
            },
            reply: Tuple {
                src: "10.244.1.5".parse().unwrap(),
                dst: client,
                src_port: 53,
                dst_port: 1001,
            },
            zone: 0,
            id: Some(0x6f02_28ac),
        }
    }

    #[test]
    fn parses_a_captured_entry() {
        assert_eq!(parse(ENTRY), Ok(captured_flow()));
        assert_eq!(
            captured_flow().to_string(),
            "udp src=192.168.7.2 dst=10.96.0.10 sport=1001 dport=53 src=10.244.1.5 dst=192.168.7.2 sport=53 dport=1001"
        );
    }

    #[test]
    #[cfg(target_endian = "little")] // golden bytes spell native-endian headers
    fn dump_request_matches_conntrack_tool() {
        // conntrack -L sends AF_UNSPEC; we dump one family at a time.
        let want: &[u8] = &[
            0x14, 0, 0, 0, 0x01, 0x01, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
        ];
        assert_eq!(request(Family::Ipv4).finish(5), want);
    }

    #[test]
    fn rejects_entries_without_tuples() {
        assert!(parse(&ENTRY[0x68..]).is_err());
    }
}
