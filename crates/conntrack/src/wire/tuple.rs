//! `CTA_TUPLE_*`: addresses (`CTA_TUPLE_IP`) and protocol with ports
//! (`CTA_TUPLE_PROTO`), both ways.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nfnetlink::{Attrs, Message, ParseError};

use crate::Tuple;

const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

fn put_ip(m: &mut Message, v4: u16, v6: u16, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => m.put(v4, &a.octets()),
        IpAddr::V6(a) => m.put(v6, &a.octets()),
    }
}

/// Appends `tuple` as the nested attribute `kind` (`CTA_TUPLE_ORIG`/`REPLY`).
pub(crate) fn put(m: &mut Message, kind: u16, protocol: u8, tuple: &Tuple) {
    let outer = m.begin_nest(kind);
    let ip = m.begin_nest(CTA_TUPLE_IP);
    put_ip(m, CTA_IP_V4_SRC, CTA_IP_V6_SRC, tuple.src);
    put_ip(m, CTA_IP_V4_DST, CTA_IP_V6_DST, tuple.dst);
    m.end_nest(ip);
    let proto = m.begin_nest(CTA_TUPLE_PROTO);
    m.put_u8(CTA_PROTO_NUM, protocol);
    if tuple.src_port != 0 || tuple.dst_port != 0 {
        m.put_u16_be(CTA_PROTO_SRC_PORT, tuple.src_port);
        m.put_u16_be(CTA_PROTO_DST_PORT, tuple.dst_port);
    }
    m.end_nest(proto);
    m.end_nest(outer);
}

fn parse_ip(a: &nfnetlink::Attr<'_>) -> Result<IpAddr, ParseError> {
    a.array::<4>()
        .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
        .or_else(|| a.array::<16>().map(|o| IpAddr::V6(Ipv6Addr::from(o))))
        .ok_or(ParseError("conntrack address of the wrong size"))
}

/// Parses a `CTA_TUPLE_*` payload into the tuple and its protocol number.
pub(crate) fn parse(attrs: Attrs<'_>) -> Result<(u8, Tuple), ParseError> {
    let (mut src, mut dst, mut protocol) = (None, None, None);
    let (mut src_port, mut dst_port) = (0, 0);
    for a in attrs {
        let a = a?;
        match a.kind() {
            CTA_TUPLE_IP => {
                for ip in a.nested() {
                    let ip = ip?;
                    match ip.kind() {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = Some(parse_ip(&ip)?),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = Some(parse_ip(&ip)?),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for p in a.nested() {
                    let p = p?;
                    match p.kind() {
                        CTA_PROTO_NUM => protocol = Some(p.u8()?),
                        CTA_PROTO_SRC_PORT => src_port = p.u16_be()?,
                        CTA_PROTO_DST_PORT => dst_port = p.u16_be()?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let missing = ParseError("conntrack tuple without addresses or protocol");
    Ok((
        protocol.ok_or(missing.clone())?,
        Tuple {
            src: src.ok_or(missing.clone())?,
            dst: dst.ok_or(missing)?,
            src_port,
            dst_port,
        },
    ))
}
