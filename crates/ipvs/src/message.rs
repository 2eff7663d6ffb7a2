//! The IPVS generic netlink message: command, top-level attributes, and the
//! framing of requests and replies (pure: no socket).

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTIPART,
    NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla, NlaBuffer, Parseable,
    ParseableParametrized,
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

/// How a request is to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A change or a get: one reply or one acknowledgement.
    Ack,
    /// A dump: multi-part replies ended by `NLMSG_DONE`.
    Dump,
}

/// Appends one request to `out` (several requests may share a buffer and
/// one `sendmsg`).
pub(crate) fn encode(out: &mut Vec<u8>, family: u16, seq: u32, kind: Kind, msg: IpvsMessage) {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST
        | match kind {
            Kind::Ack => NLM_F_ACK,
            Kind::Dump => NLM_F_DUMP,
        };
    header.sequence_number = seq;
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(family);
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(genl));
    nl.finalize();
    let start = out.len();
    out.resize(start + nl.buffer_len(), 0);
    nl.serialize(&mut out[start..]);
}

/// What one received netlink message says.
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
    /// Anything else (`NLMSG_NOOP`...): ignored.
    Ignored,
}

/// One received message with the header fields the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) seq: u32,
    /// `NLM_F_MULTI` was set (part of a dump).
    pub(crate) multi: bool,
    /// `NLM_F_DUMP_INTR` was set: the dump is inconsistent and must be redone.
    pub(crate) interrupted: bool,
    pub(crate) reply: Reply,
}

/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct genlmsghdr)`.
const GENL_HDRLEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Types below this are netlink's own control messages.
const NLMSG_MIN_TYPE: u16 = 16;

/// One message of a received datagram, read no further than its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) seq: u32,
    /// `NLM_F_MULTI` was set (part of a dump).
    pub(crate) multi: bool,
    /// `NLM_F_DUMP_INTR` was set: the dump is inconsistent and must be redone.
    pub(crate) interrupted: bool,
    pub(crate) body: Body<'a>,
}

/// What a [`Frame`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body<'a> {
    /// A data message: its generic netlink command and its attributes, undecoded.
    Data { cmd: u8, attrs: &'a [u8] },
    /// `NLMSG_ERROR` with 0: the request succeeded.
    Ack,
    /// `NLMSG_ERROR` with a negative errno (stored positive).
    Error(i32),
    /// `NLMSG_DONE`: end of a dump, with the dump's error if it failed.
    Done(i32),
    /// Anything else (`NLMSG_NOOP`...).
    Ignored,
}

/// The messages of a datagram, read in place (no copy, no allocation); the
/// iteration ends after a malformed message.
pub(crate) fn frames(buf: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, DecodeError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let frame = split_frame(rest);
        rest = match &frame {
            // Messages are 4-byte aligned within a datagram.
            Ok((_, len)) => rest.get(len.next_multiple_of(4)..).unwrap_or_default(),
            Err(_) => &[],
        };
        Some(frame.map(|(frame, _)| frame))
    })
}

/// The first message of `buf` and its length.
fn split_frame(buf: &[u8]) -> Result<(Frame<'_>, usize), DecodeError> {
    let header = buf
        .get(..NLMSG_HDRLEN)
        .ok_or_else(|| format!("netlink header truncated to {} bytes", buf.len()))?;
    let u16_at = |i: usize| u16::from_ne_bytes([header[i], header[i + 1]]);
    let u32_at =
        |i: usize| u32::from_ne_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let len = u32_at(0) as usize;
    let (kind, flags, seq) = (u16_at(4), u16_at(6), u32_at(8));
    let payload = buf
        .get(NLMSG_HDRLEN..len)
        .ok_or_else(|| format!("netlink message of {len} bytes in {} bytes", buf.len()))?;
    let code = || -> Result<i32, DecodeError> {
        match payload.get(..4) {
            Some(&[a, b, c, d]) => Ok(i32::from_ne_bytes([a, b, c, d])),
            _ => Err(format!("netlink message of type {kind} without its error code").into()),
        }
    };
    let body = match kind {
        NLMSG_ERROR => match code()? {
            0 => Body::Ack,
            errno => Body::Error(-errno),
        },
        NLMSG_DONE => Body::Done(-code()?),
        _ if kind < NLMSG_MIN_TYPE => Body::Ignored,
        _ => Body::Data {
            cmd: *payload
                .first()
                .ok_or("generic netlink message without its header")?,
            attrs: payload
                .get(GENL_HDRLEN..)
                .ok_or("generic netlink header truncated")?,
        },
    };
    let frame = Frame {
        seq,
        multi: flags & NLM_F_MULTIPART != 0,
        interrupted: flags & NLM_F_DUMP_INTR != 0,
        body,
    };
    Ok((frame, len))
}

/// Decodes the attributes of a data message with command `cmd`.
pub(crate) fn parse_data(cmd: u8, attrs: &[u8]) -> Result<IpvsMessage, DecodeError> {
    let header = GenlHeader {
        cmd,
        version: FAMILY_VERSION,
    };
    IpvsMessage::parse_with_param(attrs, header)
}

/// Splits a datagram into its messages and decodes them.
pub(crate) fn decode_all(buf: &[u8]) -> Result<Vec<Received>, DecodeError> {
    frames(buf)
        .map(|frame| {
            let frame = frame?;
            let reply = match frame.body {
                Body::Data { cmd, attrs } => Reply::Data(parse_data(cmd, attrs)?),
                Body::Ack => Reply::Ack,
                Body::Error(errno) => Reply::Error(errno),
                Body::Done(errno) => Reply::Done(errno),
                Body::Ignored => Reply::Ignored,
            };
            Ok(Received {
                seq: frame.seq,
                multi: frame.multi,
                interrupted: frame.interrupted,
                reply,
            })
        })
        .collect()
}
