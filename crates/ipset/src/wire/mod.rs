//! The ipset nfnetlink protocol (`include/uapi/linux/netfilter/ipset/ip_set.h`):
//! constants, and one module per message family.

pub(crate) mod adt;
pub(crate) mod list;
pub(crate) mod set;

/// `NFNL_SUBSYS_IPSET`.
pub(crate) const SUBSYS: u8 = 6;
/// The protocol version we speak: 6 is `IPSET_PROTOCOL_MIN` of every kernel
/// that knows version 7, and the only version of older ones.
pub(crate) const PROTOCOL: u8 = 6;

/// Commands (`enum ipset_cmd`).
pub(crate) mod cmd {
    pub(crate) const PROTOCOL: u8 = 1;
    pub(crate) const CREATE: u8 = 2;
    pub(crate) const DESTROY: u8 = 3;
    pub(crate) const FLUSH: u8 = 4;
    pub(crate) const RENAME: u8 = 5;
    pub(crate) const SWAP: u8 = 6;
    pub(crate) const LIST: u8 = 7;
    pub(crate) const ADD: u8 = 9;
    pub(crate) const DEL: u8 = 10;
    pub(crate) const TEST: u8 = 11;
    pub(crate) const TYPE: u8 = 13;
}

/// Attributes at command level.
pub(crate) mod attr {
    pub(crate) const PROTOCOL: u16 = 1;
    pub(crate) const SETNAME: u16 = 2;
    pub(crate) const TYPENAME: u16 = 3;
    pub(crate) const SETNAME2: u16 = 3;
    pub(crate) const REVISION: u16 = 4;
    pub(crate) const FAMILY: u16 = 5;
    pub(crate) const DATA: u16 = 7;
    pub(crate) const ADT: u16 = 8;
    pub(crate) const PROTOCOL_MIN: u16 = 10;
}

/// Attributes inside `IPSET_ATTR_DATA` (create and add/del/test).
pub(crate) mod data {
    pub(crate) const IP: u16 = 1;
    pub(crate) const CIDR: u16 = 3;
    pub(crate) const PORT: u16 = 4;
    pub(crate) const PORT_TO: u16 = 5;
    pub(crate) const PROTO: u16 = 7;
    pub(crate) const CADT_FLAGS: u16 = 8;
    pub(crate) const HASHSIZE: u16 = 18;
    pub(crate) const MAXELEM: u16 = 19;
    pub(crate) const REFERENCES: u16 = 25;
    pub(crate) const IP2: u16 = 20;
    pub(crate) const CIDR2: u16 = 21;
    pub(crate) const COMMENT: u16 = 26;
    /// `IPSET_ATTR_IPADDR_IPV4`, inside `IP`/`IP2`.
    pub(crate) const IPADDR_IPV4: u16 = 1;
    /// `IPSET_ATTR_IPADDR_IPV6`, inside `IP`/`IP2`.
    pub(crate) const IPADDR_IPV6: u16 = 2;
    /// `IPSET_FLAG_WITH_COMMENT` in `CADT_FLAGS`.
    pub(crate) const WITH_COMMENT: u32 = 1 << 4;
}

/// `NFPROTO_UNSPEC`, the family of `bitmap:port` sets.
pub(crate) const NFPROTO_UNSPEC: u8 = 0;

/// A request with the protocol attribute, and the set name when given.
pub(crate) fn request(command: u8, family: u8, set: Option<&str>) -> nfnetlink::Message {
    let mut m = nfnetlink::Message::new(SUBSYS, command, family);
    m.put_u8(attr::PROTOCOL, PROTOCOL);
    if let Some(name) = set {
        m.put_str(attr::SETNAME, name);
    }
    m
}

/// The spec of kube-proxy's `KUBE-CLUSTER-IP`, which the golden tests use.
#[cfg(test)]
pub(crate) fn cluster_ip_spec() -> crate::SetSpec {
    let name = "KUBE-CLUSTER-IP".parse().expect("valid name");
    crate::SetSpec::hash(
        name,
        crate::SetType::HashIpPort,
        crate::Family::Inet,
        crate::HashLimits::default(),
    )
    .expect("a hash type")
}
