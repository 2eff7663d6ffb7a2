//! The IPVS generic netlink message: command, top-level attributes, and the
//! framing of requests and replies (pure: no socket).

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla,
    NlaBuffer, Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use crate::destination::DestAttr;
use crate::info::InfoAttr;
use crate::nla::{parse_all, u32_ne};
use crate::service::ServiceAttr;

/// The generic netlink family name (`IPVS_GENL_NAME`).
pub(crate) const FAMILY_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
const FAMILY_VERSION: u8 = 1;

const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub(crate) const IPVS_CMD_ATTR_DEST: u16 = 2;
const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

/// `IPVS_CMD_*`. Replies carry a different command than their request
/// (GET_SERVICE is answered with NEW_SERVICE, GET_INFO with SET_INFO...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Command {
    NewService = 1,
    SetService = 2,
    DelService = 3,
    GetService = 4,
    NewDest = 5,
    SetDest = 6,
    DelDest = 7,
    GetDest = 8,
    SetConfig = 12,
    GetConfig = 13,
    SetInfo = 14,
    GetInfo = 15,
    Zero = 16,
    Flush = 17,
}

/// A top-level `IPVS_CMD_ATTR_*` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum CmdAttr {
    Service(Vec<ServiceAttr>),
    Dest(Vec<DestAttr>),
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    Other(DefaultNla),
}

impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        match self {
            CmdAttr::Service(nlas) => nlas.as_slice().buffer_len(),
            CmdAttr::Dest(nlas) => nlas.as_slice().buffer_len(),
            CmdAttr::TimeoutTcp(_) | CmdAttr::TimeoutTcpFin(_) | CmdAttr::TimeoutUdp(_) => 4,
            CmdAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            CmdAttr::Service(_) => IPVS_CMD_ATTR_SERVICE,
            CmdAttr::Dest(_) => IPVS_CMD_ATTR_DEST,
            CmdAttr::TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            CmdAttr::TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            CmdAttr::TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            CmdAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CmdAttr::Service(nlas) => nlas.as_slice().emit(buffer),
            CmdAttr::Dest(nlas) => nlas.as_slice().emit(buffer),
            CmdAttr::TimeoutTcp(v) | CmdAttr::TimeoutTcpFin(v) | CmdAttr::TimeoutUdp(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes());
            }
            CmdAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for CmdAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_CMD_ATTR_SERVICE => CmdAttr::Service(parse_all(v, "IPVS_CMD_ATTR_SERVICE")?),
            IPVS_CMD_ATTR_DEST => CmdAttr::Dest(parse_all(v, "IPVS_CMD_ATTR_DEST")?),
            IPVS_CMD_ATTR_TIMEOUT_TCP => {
                CmdAttr::TimeoutTcp(u32_ne(v, "IPVS_CMD_ATTR_TIMEOUT_TCP")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                CmdAttr::TimeoutTcpFin(u32_ne(v, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_UDP => {
                CmdAttr::TimeoutUdp(u32_ne(v, "IPVS_CMD_ATTR_TIMEOUT_UDP")?)
            }
            _ => CmdAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// The attributes after the generic header: command attributes, except in
/// a `SET_INFO` reply whose attribute numbers mean something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attrs {
    Cmd(Vec<CmdAttr>),
    Info(Vec<InfoAttr>),
}

/// One IPVS message (the payload of a generic netlink message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpvsMessage {
    /// The raw command, kept raw so that a reply with an unknown command
    /// still decodes.
    pub(crate) cmd: u8,
    pub(crate) attrs: Attrs,
}

impl IpvsMessage {
    pub(crate) fn new(cmd: Command, attrs: Vec<CmdAttr>) -> Self {
        IpvsMessage {
            cmd: cmd as u8,
            attrs: Attrs::Cmd(attrs),
        }
    }

    /// The command attributes (empty for an info reply).
    pub(crate) fn cmd_attrs(&self) -> &[CmdAttr] {
        match &self.attrs {
            Attrs::Cmd(attrs) => attrs,
            Attrs::Info(_) => &[],
        }
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        match &self.attrs {
            Attrs::Cmd(a) => a.as_slice().buffer_len(),
            Attrs::Info(a) => a.as_slice().buffer_len(),
        }
    }

    fn emit(&self, buffer: &mut [u8]) {
        match &self.attrs {
            Attrs::Cmd(a) => a.as_slice().emit(buffer),
            Attrs::Info(a) => a.as_slice().emit(buffer),
        }
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = if header.cmd == Command::SetInfo as u8 {
            Attrs::Info(parse_all(buf, "IPVS info")?)
        } else {
            Attrs::Cmd(parse_all(buf, "IPVS command")?)
        };
        Ok(IpvsMessage {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// Appends one request to `out` (several requests may share a buffer and
/// one `sendmsg`); the socket sets its flags and sequence number.
pub(crate) fn encode(out: &mut Vec<u8>, family: u16, msg: IpvsMessage) {
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(family);
    let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(genl));
    nl.finalize();
    let start = out.len();
    out.resize(start + nl.buffer_len(), 0);
    nl.serialize(&mut out[start..]);
}

/// `sizeof(struct genlmsghdr)`.
const GENL_HDRLEN: usize = 4;

/// The generic netlink command and the undecoded attributes of a data
/// message (what follows its `nlmsghdr`).
pub(crate) fn genl(payload: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    match (payload.first(), payload.get(GENL_HDRLEN..)) {
        (Some(&cmd), Some(attrs)) => Ok((cmd, attrs)),
        _ => Err("generic netlink header truncated".into()),
    }
}

/// Decodes the attributes of a data message with command `cmd`.
pub(crate) fn parse_data(cmd: u8, attrs: &[u8]) -> Result<IpvsMessage, DecodeError> {
    let header = GenlHeader {
        cmd,
        version: FAMILY_VERSION,
    };
    IpvsMessage::parse_with_param(attrs, header)
}
