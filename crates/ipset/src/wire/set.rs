//! Whole-set messages: protocol, type, create, destroy, flush, rename, swap.

use nfnetlink::{Attrs, Message, NLA_F_NET_BYTEORDER, ParseError};

use super::{NFPROTO_UNSPEC, attr, cmd, data, request};
use crate::{SetName, SetSpec, SetType, Storage};

/// The `nfgenmsg`/`IPSET_ATTR_FAMILY` value for a spec.
pub(crate) fn family_of(spec: &SetSpec) -> u8 {
    spec.family().map_or(NFPROTO_UNSPEC, |f| f.nfproto())
}

/// `IPSET_CMD_PROTOCOL`: which protocol versions the kernel speaks.
pub(crate) fn protocol() -> Message {
    request(cmd::PROTOCOL, NFPROTO_UNSPEC, None)
}

/// Parses the reply to [`protocol`]: `(min, max)`.
pub(crate) fn parse_protocol(attrs: &[u8]) -> Result<(u8, u8), ParseError> {
    let (mut min, mut max) = (None, None);
    for a in Attrs::new(attrs) {
        let a = a?;
        match a.kind() {
            attr::PROTOCOL => max = Some(a.u8()?),
            attr::PROTOCOL_MIN => min = Some(a.u8()?),
            _ => {}
        }
    }
    let max = max.ok_or(ParseError("protocol reply without IPSET_ATTR_PROTOCOL"))?;
    Ok((min.unwrap_or(max), max))
}

/// `IPSET_CMD_TYPE`: the revisions of `set_type` the kernel has.
pub(crate) fn type_query(set_type: SetType, family: u8) -> Message {
    let mut m = request(cmd::TYPE, family, None);
    m.put_str(attr::TYPENAME, set_type.name());
    m.put_u8(attr::FAMILY, family);
    m
}

/// Parses the reply to [`type_query`]: the highest revision.
pub(crate) fn parse_type(attrs: &[u8]) -> Result<u8, ParseError> {
    for a in Attrs::new(attrs) {
        let a = a?;
        if a.kind() == attr::REVISION {
            return a.u8();
        }
    }
    Err(ParseError("type reply without IPSET_ATTR_REVISION"))
}

/// `IPSET_CMD_CREATE` of `spec` at `revision`.
pub(crate) fn create(spec: &SetSpec, revision: u8) -> Message {
    let family = family_of(spec);
    let mut m = request(cmd::CREATE, family, Some(spec.name().as_str()));
    m.put_str(attr::TYPENAME, spec.set_type().name());
    m.put_u8(attr::REVISION, revision);
    m.put_u8(attr::FAMILY, family);
    let nest = m.begin_nest(attr::DATA);
    match spec.storage() {
        Storage::Hash { limits, .. } => {
            m.put_u32_be(data::HASHSIZE | NLA_F_NET_BYTEORDER, limits.hashsize);
            m.put_u32_be(data::MAXELEM | NLA_F_NET_BYTEORDER, limits.maxelem);
        }
        Storage::Bitmap { range } => {
            m.put_u16_be(data::PORT | NLA_F_NET_BYTEORDER, *range.start());
            m.put_u16_be(data::PORT_TO | NLA_F_NET_BYTEORDER, *range.end());
        }
    }
    if spec.comments() {
        m.put_u32_be(data::CADT_FLAGS | NLA_F_NET_BYTEORDER, data::WITH_COMMENT);
    }
    m.end_nest(nest);
    m
}

/// `IPSET_CMD_DESTROY`, `IPSET_CMD_FLUSH`: commands naming one set.
pub(crate) fn named(command: u8, set: &SetName) -> Message {
    request(command, NFPROTO_UNSPEC, Some(set.as_str()))
}

/// `IPSET_CMD_RENAME`, `IPSET_CMD_SWAP`: commands naming two sets.
pub(crate) fn two_names(command: u8, from: &SetName, to: &SetName) -> Message {
    let mut m = named(command, from);
    m.put_str(attr::SETNAME2, to.as_str());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ipset create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024
    /// maxelem 65536`: the bytes ipset 7.17 sent on kernel 6.18 (captured
    /// with strace), except that we speak protocol 6 where it says 7 and
    /// the socket, not the builder, sets the `nlmsg_flags`.
    #[test]
    #[cfg(target_endian = "little")] // golden bytes spell native-endian headers
    fn create_hash_ip_port() {
        let spec = crate::wire::cluster_ip_spec();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[104u8, 0, 0, 0][..], &[0x02, 0x06], &[0, 0], &[1, 0, 0, 0], &[0, 0, 0, 0], // nlmsghdr: len 104, IPSET_CMD_CREATE | IPSET << 8
            &[2, 0, 0, 0],                                 // nfgenmsg: NFPROTO_IPV4, v0, res_id 0
            &[5, 0, 1, 0, 6, 0, 0, 0],                     // IPSET_ATTR_PROTOCOL = 6
            &[20, 0, 2, 0], b"KUBE-CLUSTER-IP\0",          // IPSET_ATTR_SETNAME
            &[17, 0, 3, 0], b"hash:ip,port\0", &[0, 0, 0], // IPSET_ATTR_TYPENAME
            &[5, 0, 4, 0, 7, 0, 0, 0],                     // IPSET_ATTR_REVISION = 7 (the kernel's highest)
            &[5, 0, 5, 0, 2, 0, 0, 0],                     // IPSET_ATTR_FAMILY = NFPROTO_IPV4
            &[20, 0, 7, 0x80],                             // IPSET_ATTR_DATA | NLA_F_NESTED
            &[8, 0, 18, 0x40, 0, 0, 4, 0],                 //   IPSET_ATTR_HASHSIZE | NET_BYTEORDER = 1024
            &[8, 0, 19, 0x40, 0, 1, 0, 0],                 //   IPSET_ATTR_MAXELEM | NET_BYTEORDER = 65536
        ]
        .concat();
        assert_eq!(create(&spec, 7).finish(1), want);
    }

    #[test]
    fn create_bitmap_port_with_comments() {
        let spec = SetSpec::bitmap_port("P".parse().unwrap(), 30000..=32767).with_comments();
        let bytes = create(&spec, 3).finish(1);
        #[rustfmt::skip]
        let tail: &[u8] = &[
            28, 0, 7, 0x80,                        // IPSET_ATTR_DATA
            6, 0, 4, 0x40, 0x75, 0x30, 0, 0,       //   IPSET_ATTR_PORT = 30000
            6, 0, 5, 0x40, 0x7f, 0xff, 0, 0,       //   IPSET_ATTR_PORT_TO = 32767
            8, 0, 8, 0x40, 0, 0, 0, 0x10,          //   IPSET_ATTR_CADT_FLAGS = WITH_COMMENT
        ];
        assert!(bytes.ends_with(tail), "{bytes:?}");
        assert_eq!(bytes[16], NFPROTO_UNSPEC);
    }

    #[test]
    fn parses_protocol_and_type_replies() {
        let mut m = Message::new(6, cmd::PROTOCOL, 2);
        m.put_u8(attr::PROTOCOL, 7);
        m.put_u8(attr::PROTOCOL_MIN, 6);
        assert_eq!(parse_protocol(&m.finish(0)[20..]), Ok((6, 7)));
        let mut m = Message::new(6, cmd::TYPE, 2);
        m.put_u8(attr::PROTOCOL, 6);
        m.put_str(attr::TYPENAME, "hash:ip");
        m.put_u8(attr::FAMILY, 2);
        m.put_u8(attr::REVISION, 6);
        m.put_u8(attr::PROTOCOL_MIN, 0); // IPSET_ATTR_REVISION_MIN has the same value
        assert_eq!(parse_type(&m.finish(0)[20..]), Ok(6));
    }
}
