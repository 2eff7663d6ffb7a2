//! The ctnetlink protocol (`include/uapi/linux/netfilter/nfnetlink_conntrack.h`):
//! constants, tuples, dumps and deletes.

pub(crate) mod delete;
pub(crate) mod dump;
pub(crate) mod tuple;

/// `NFNL_SUBSYS_CTNETLINK`.
pub(crate) const SUBSYS: u8 = 1;

/// `enum cntl_msg_types`.
pub(crate) mod msg {
    /// `IPCTNL_MSG_CT_GET`.
    pub(crate) const GET: u8 = 1;
    /// `IPCTNL_MSG_CT_DELETE`.
    pub(crate) const DELETE: u8 = 2;
}

/// `enum ctattr_type`.
pub(crate) mod cta {
    pub(crate) const TUPLE_ORIG: u16 = 1;
    pub(crate) const TUPLE_REPLY: u16 = 2;
    pub(crate) const ID: u16 = 12;
    pub(crate) const ZONE: u16 = 18;
}
