//! Member messages: `IPSET_CMD_ADD`, `IPSET_CMD_DEL`, `IPSET_CMD_TEST`, and
//! the `IPSET_ATTR_DATA` layout of one member, both ways.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nfnetlink::{Attr, Attrs, Message, NLA_F_NET_BYTEORDER, ParseError};

use super::{attr, data, request};
use crate::{Entry, Member, Net, Protocol, SetName, SetType};

/// One add/del/test request for `member` of `set`. Without `NLM_F_EXCL` the
/// kernel treats adding a present entry and deleting an absent one as
/// success (`IPSET_FLAG_EXIST`), as `ipset -exist` does.
pub(crate) fn member(command: u8, set: &SetName, member: &Member) -> Message {
    let mut m = request(command, 0, Some(set.as_str()));
    let nest = m.begin_nest(attr::DATA);
    put_entry(&mut m, &member.entry);
    if let Some(comment) = &member.comment {
        m.put_str(data::COMMENT, comment);
    }
    m.end_nest(nest);
    m
}

fn put_ip(m: &mut Message, kind: u16, ip: IpAddr) {
    let nest = m.begin_nest(kind);
    match ip {
        IpAddr::V4(a) => m.put(data::IPADDR_IPV4 | NLA_F_NET_BYTEORDER, &a.octets()),
        IpAddr::V6(a) => m.put(data::IPADDR_IPV6 | NLA_F_NET_BYTEORDER, &a.octets()),
    }
    m.end_nest(nest);
}

fn put_port(m: &mut Message, proto: Protocol, port: u16) {
    m.put_u16_be(data::PORT | NLA_F_NET_BYTEORDER, port);
    m.put_u8(data::PROTO, proto.number());
}

fn put_entry(m: &mut Message, entry: &Entry) {
    match *entry {
        Entry::Ip { ip } => put_ip(m, data::IP, ip),
        Entry::IpPort { ip, proto, port } => {
            put_ip(m, data::IP, ip);
            put_port(m, proto, port);
        }
        Entry::IpPortIp {
            ip,
            proto,
            port,
            ip2,
        } => {
            put_ip(m, data::IP, ip);
            put_port(m, proto, port);
            put_ip(m, data::IP2, ip2);
        }
        Entry::IpPortNet {
            ip,
            proto,
            port,
            net,
        } => {
            put_ip(m, data::IP, ip);
            put_port(m, proto, port);
            put_ip(m, data::IP2, net.addr());
            m.put_u8(data::CIDR2, net.prefix());
        }
        Entry::Net { net } => {
            put_ip(m, data::IP, net.addr());
            m.put_u8(data::CIDR, net.prefix());
        }
        Entry::Port { port } => m.put_u16_be(data::PORT | NLA_F_NET_BYTEORDER, port),
    }
}

fn parse_ip(a: &Attr<'_>) -> Result<IpAddr, ParseError> {
    let inner = a
        .nested()
        .next()
        .ok_or(ParseError("empty address attribute"))??;
    match inner.kind() {
        data::IPADDR_IPV4 => inner.array::<4>().map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        data::IPADDR_IPV6 => inner.array::<16>().map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        _ => None,
    }
    .ok_or(ParseError("address attribute of unknown family or size"))
}

/// The fields a member's `IPSET_ATTR_DATA` may carry.
#[derive(Default)]
struct Fields {
    ip: Option<IpAddr>,
    ip2: Option<IpAddr>,
    cidr: Option<u8>,
    cidr2: Option<u8>,
    port: Option<u16>,
    proto: Option<u8>,
    comment: Option<String>,
}

/// Parses one member of a set of type `set_type` from the payload of an
/// `IPSET_ATTR_DATA` attribute of a dump.
pub(crate) fn parse_member(set_type: SetType, payload: Attrs<'_>) -> Result<Member, ParseError> {
    let mut f = Fields::default();
    for a in payload {
        let a = a?;
        match a.kind() {
            data::IP => f.ip = Some(parse_ip(&a)?),
            data::IP2 => f.ip2 = Some(parse_ip(&a)?),
            data::CIDR => f.cidr = Some(a.u8()?),
            data::CIDR2 => f.cidr2 = Some(a.u8()?),
            data::PORT => f.port = Some(a.u16_be()?),
            data::PROTO => f.proto = Some(a.u8()?),
            data::COMMENT => f.comment = Some(a.str()?.to_owned()),
            _ => {}
        }
    }
    let missing = |what| ParseError(what);
    let ip = || f.ip.ok_or(missing("member without IPSET_ATTR_IP"));
    let port = || f.port.ok_or(missing("member without IPSET_ATTR_PORT"));
    let proto = || {
        f.proto
            .and_then(Protocol::from_number)
            .ok_or(missing("member without a TCP, UDP or SCTP protocol"))
    };
    let net = |addr: Option<IpAddr>, cidr: Option<u8>| {
        let addr = addr.ok_or(missing("member without a network address"))?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        Net::new(addr, cidr.unwrap_or(full)).map_err(|_| missing("member with a prefix too long"))
    };
    let entry = match set_type {
        SetType::HashIp => Entry::Ip { ip: ip()? },
        SetType::HashIpPort => Entry::IpPort {
            ip: ip()?,
            proto: proto()?,
            port: port()?,
        },
        SetType::HashIpPortIp => Entry::IpPortIp {
            ip: ip()?,
            proto: proto()?,
            port: port()?,
            ip2: f.ip2.ok_or(missing("member without IPSET_ATTR_IP2"))?,
        },
        SetType::HashIpPortNet => Entry::IpPortNet {
            ip: ip()?,
            proto: proto()?,
            port: port()?,
            net: net(f.ip2, f.cidr2)?,
        },
        SetType::HashNet => Entry::Net {
            net: net(f.ip, f.cidr)?,
        },
        SetType::BitmapPort => Entry::Port { port: port()? },
    };
    Ok(Member {
        entry,
        comment: f.comment,
    })
}

#[cfg(test)]
#[cfg(target_endian = "little")] // the golden bytes spell native-endian netlink headers
mod tests {
    use super::*;
    use crate::wire::cmd;

    fn set() -> SetName {
        "KUBE-CLUSTER-IP".parse().unwrap()
    }

    /// `ipset add KUBE-CLUSTER-IP 10.96.0.10,tcp:80` as ipset 7.17 sends it
    /// (strace capture), minus its `IPSET_ATTR_LINENO 0` and with protocol 6.
    #[test]
    fn add_ip_port() {
        let m = member(
            cmd::ADD,
            &set(),
            &"10.96.0.10,tcp:80".parse::<Entry>().unwrap().into(),
        );
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[80u8, 0, 0, 0][..], &[0x09, 0x06], &[0, 0], &[7, 0, 0, 0], &[0, 0, 0, 0], // IPSET_CMD_ADD
            &[0, 0, 0, 0],                                 // nfgenmsg: the kernel ignores the family
            &[5, 0, 1, 0, 6, 0, 0, 0],                     // IPSET_ATTR_PROTOCOL
            &[20, 0, 2, 0], b"KUBE-CLUSTER-IP\0",          // IPSET_ATTR_SETNAME
            &[32, 0, 7, 0x80],                             // IPSET_ATTR_DATA
            &[12, 0, 1, 0x80],                             //   IPSET_ATTR_IP
            &[8, 0, 1, 0x40, 10, 96, 0, 10],               //     IPSET_ATTR_IPADDR_IPV4, network order
            &[6, 0, 4, 0x40, 0, 80, 0, 0],                 //   IPSET_ATTR_PORT = 80
            &[5, 0, 7, 0, 6, 0, 0, 0],                     //   IPSET_ATTR_PROTO = IPPROTO_TCP
        ]
        .concat();
        assert_eq!(m.finish(7), want);
    }

    #[test]
    fn del_differs_only_in_command() {
        let member: Member = "10.96.0.10,tcp:80".parse::<Entry>().unwrap().into();
        let add = super::member(cmd::ADD, &set(), &member).finish(1);
        let mut del = super::member(cmd::DEL, &set(), &member).finish(1);
        assert_eq!(del[4], cmd::DEL);
        del[4] = cmd::ADD;
        assert_eq!(add, del);
    }

    #[test]
    fn every_type_round_trips_through_data() {
        for (t, text) in [
            (SetType::HashIp, "fd00::1"),
            (SetType::HashIpPort, "10.0.0.1,sctp:9"),
            (SetType::HashIpPortIp, "10.0.0.1,udp:53,10.0.0.2"),
            (
                SetType::HashIpPortNet,
                "2001:db8::1,tcp:443,2001:db8:1::/48",
            ),
            (SetType::HashNet, "192.0.2.0/24"),
            (SetType::BitmapPort, "30080"),
        ] {
            let member = Member::new(Entry::parse_for(t, text).unwrap()).with_comment("c");
            let bytes = super::member(cmd::ADD, &set(), &member).finish(1);
            let data = Attrs::new(&bytes[20..])
                .map(Result::unwrap)
                .find(|a| a.kind() == attr::DATA)
                .unwrap();
            assert_eq!(parse_member(t, data.nested()), Ok(member));
        }
    }
}
