//! The netlink header (`struct nlmsghdr`) and the messages of a received
//! datagram, read in place: data, acknowledgements and errors (with the
//! extended acknowledgement's message), dump ends.

/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDRLEN: usize = 16;
/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: part of a multi-part answer (a dump).
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`: answer with an acknowledgement.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_DUMP_INTR`: the dump changed while it was read.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_CAPPED` (on `NLMSG_ERROR`): the echoed request is its header only.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` (on `NLMSG_ERROR`): extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSG_ERROR`.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
pub const NLMSG_DONE: u16 = 3;
/// Types below this are netlink's own control messages.
const NLMSG_MIN_TYPE: u16 = 16;
/// `NLMSGERR_ATTR_MSG`: the extended acknowledgement's text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A received datagram or request buffer that is not valid netlink.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink message: {0}")]
pub struct Malformed(pub String);

/// One message of a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// `nlmsg_seq`: the request this answers.
    pub seq: u32,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// What it says.
    pub body: Body<'a>,
}

impl Frame<'_> {
    /// `NLM_F_DUMP_INTR` is set: the dump it belongs to must be redone.
    pub fn interrupted(&self) -> bool {
        self.flags & NLM_F_DUMP_INTR != 0
    }
}

/// What a [`Frame`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// A data message of `kind` (`nlmsg_type`): `message` is all of it,
    /// header included, `payload` what follows the header (for generic
    /// netlink the `genlmsghdr`, for nfnetlink the `nfgenmsg`, then
    /// attributes).
    Data {
        /// `nlmsg_type`.
        kind: u16,
        /// The whole message.
        message: &'a [u8],
        /// After the header.
        payload: &'a [u8],
    },
    /// `NLMSG_ERROR` with 0: the request succeeded.
    Ack,
    /// `NLMSG_ERROR` with an errno (positive), and the extended
    /// acknowledgement's text when the kernel gave one.
    Error {
        /// The errno, positive.
        errno: i32,
        /// `NLMSGERR_ATTR_MSG`.
        message: Option<&'a str>,
    },
    /// `NLMSG_DONE`: the end of a dump, with its errno (0: complete).
    Done(i32),
    /// `NLMSG_NOOP` and other control messages.
    Ignored,
}

/// The messages of a datagram, read in place (no copy); the iteration ends
/// after a malformed message.
pub fn frames(datagram: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, Malformed>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let frame = split(rest);
        rest = match &frame {
            // Messages are 4-byte aligned within a datagram.
            Ok((_, len)) => rest.get(len.next_multiple_of(4)..).unwrap_or_default(),
            Err(_) => &[],
        };
        Some(frame.map(|(frame, _)| frame))
    })
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The first message of `buf` and its length.
fn split(buf: &[u8]) -> Result<(Frame<'_>, usize), Malformed> {
    if buf.len() < NLMSG_HDRLEN {
        return Err(Malformed(format!(
            "header truncated to {} bytes",
            buf.len()
        )));
    }
    let len = u32_at(buf, 0) as usize;
    let (kind, flags, seq) = (u16_at(buf, 4), u16_at(buf, 6), u32_at(buf, 8));
    let message = buf
        .get(..len)
        .filter(|_| len >= NLMSG_HDRLEN)
        .ok_or_else(|| Malformed(format!("message of {len} bytes in {} bytes", buf.len())))?;
    let payload = &message[NLMSG_HDRLEN..];
    let code = || match payload.get(..4) {
        Some(&[a, b, c, d]) => Ok(i32::from_ne_bytes([a, b, c, d])),
        _ => Err(Malformed(format!(
            "message of type {kind} without its error code"
        ))),
    };
    let body = match kind {
        NLMSG_ERROR => match code()? {
            0 => Body::Ack,
            code => Body::Error {
                errno: code.wrapping_neg(),
                message: ext_ack_message(payload, flags),
            },
        },
        NLMSG_DONE => Body::Done(code().unwrap_or(0).wrapping_neg()),
        _ if kind < NLMSG_MIN_TYPE => Body::Ignored,
        _ => Body::Data {
            kind,
            message,
            payload,
        },
    };
    Ok((Frame { seq, flags, body }, len))
}

/// The `NLMSGERR_ATTR_MSG` of an error's payload (`struct nlmsgerr`: the
/// errno, the echoed request, whole or its header only, then attributes).
fn ext_ack_message(payload: &[u8], flags: u16) -> Option<&str> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        (u32_at(payload.get(..8)?, 4) as usize).next_multiple_of(4)
    };
    let mut attrs = payload.get(4 + echoed..)?;
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0));
        let value = attrs.get(4..len)?;
        if u16_at(attrs, 2) & 0x3fff == NLMSGERR_ATTR_MSG {
            let text = value.split(|&b| b == 0).next().unwrap_or_default();
            return std::str::from_utf8(text).ok();
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

/// Sets the sequence number of the request at the start of `message`, whose
/// header its encoder wrote, and its flags: `clear` off, then `set` on. The
/// socket owns `NLM_F_REQUEST`, `NLM_F_ACK` and `NLM_F_DUMP`; other flags
/// (`NLM_F_CREATE`, `NLM_F_EXCL`...) are the encoder's.
///
/// # Panics
/// When `message` is shorter than a header.
pub fn stamp(message: &mut [u8], set: u16, clear: u16, seq: u32) {
    let old = u16_at(message, 6);
    message[6..8].copy_from_slice(&((old & !clear) | set).to_ne_bytes());
    message[8..12].copy_from_slice(&seq.to_ne_bytes());
}

/// The length the header of the request at the start of `message` claims,
/// checked against the bytes there.
pub(crate) fn request_len(message: &[u8]) -> Result<usize, Malformed> {
    let len = match message.get(..NLMSG_HDRLEN) {
        Some(header) => u32_at(header, 0) as usize,
        None => 0,
    };
    if len < NLMSG_HDRLEN || len > message.len() {
        return Err(Malformed(format!(
            "request header claims {len} bytes of {}",
            message.len()
        )));
    }
    Ok(len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A message as the kernel frames it: header, then `payload`.
    pub(crate) fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut m = Vec::with_capacity(len.next_multiple_of(4));
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&4242u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    /// An `NLMSG_ERROR` for `request` as a `NETLINK_CAP_ACK` socket gets
    /// it, with `text` as `NLMSGERR_ATTR_MSG` when given.
    pub(crate) fn error(request: &[u8], errno: i32, text: Option<&str>) -> Vec<u8> {
        let mut payload = (-errno).to_ne_bytes().to_vec();
        payload.extend_from_slice(&request[..NLMSG_HDRLEN]);
        let mut flags = NLM_F_CAPPED;
        if let Some(text) = text {
            flags |= NLM_F_ACK_TLVS;
            let len = 4 + text.len() + 1;
            payload.extend_from_slice(&(len as u16).to_ne_bytes());
            payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            payload.extend_from_slice(text.as_bytes());
            payload.push(0);
            payload.resize(payload.len().next_multiple_of(4), 0);
        }
        message(NLMSG_ERROR, flags, u32_at(request, 8), &payload)
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn an_error_with_an_extended_ack_is_read_from_golden_bytes() {
        // EEXIST for seq 7, the request's header echoed (NLM_F_CAPPED), then
        // NLMSGERR_ATTR_MSG "File exists" (NLM_F_ACK_TLVS), laid out as
        // `struct nlmsgerr` in include/uapi/linux/netlink.h.
        #[rustfmt::skip]
        let bytes: [u8; 52] = [
            52, 0, 0, 0,  2, 0,  0x00, 0x03,  7, 0, 0, 0,  0x92, 0x10, 0, 0,
            0xef, 0xff, 0xff, 0xff,                               // -17
            40, 0, 0, 0,  20, 0,  5, 0x05,  7, 0, 0, 0,  0, 0, 0, 0, // echoed header
            16, 0, 1, 0,  b'F', b'i', b'l', b'e', b' ', b'e', b'x', b'i', b's', b't', b's', 0,
        ];
        let got: Vec<_> = frames(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got,
            [Frame {
                seq: 7,
                flags: 0x300,
                body: Body::Error {
                    errno: 17,
                    message: Some("File exists"),
                },
            }]
        );
    }

    #[test]
    fn an_uncapped_error_skips_the_whole_echoed_request() {
        let request = message(0x605, NLM_F_REQUEST | NLM_F_ACK, 3, &[1, 2, 3, 4, 5]);
        let mut payload = (-22i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&request);
        payload.extend_from_slice(&[8, 0, 1, 0, b'b', b'a', b'd', 0]);
        let reply = message(NLMSG_ERROR, NLM_F_ACK_TLVS, 3, &payload);
        let frame = frames(&reply).next().unwrap().unwrap();
        assert_eq!(
            frame.body,
            Body::Error {
                errno: 22,
                message: Some("bad")
            }
        );
    }

    #[test]
    fn a_datagram_splits_into_aligned_messages_of_every_kind() {
        let data = message(0x14, NLM_F_MULTI | NLM_F_DUMP_INTR, 9, &[1, 2, 3]);
        let mut datagram = data.clone();
        datagram.extend(message(NLMSG_ERROR, 0, 8, &[0; 20]));
        datagram.extend(message(1, 0, 0, &[])); // NLMSG_NOOP
        datagram.extend(message(NLMSG_DONE, NLM_F_MULTI, 9, &(-4i32).to_ne_bytes()));
        let got: Vec<_> = frames(&datagram).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 4);
        assert!(got[0].interrupted());
        assert_eq!(
            got[0].body,
            Body::Data {
                kind: 0x14,
                message: &data[..19],
                payload: &[1, 2, 3]
            }
        );
        assert_eq!((got[1].seq, got[1].body), (8, Body::Ack));
        assert_eq!(got[2].body, Body::Ignored);
        assert_eq!(got[3].body, Body::Done(4));
    }

    #[test]
    fn a_truncated_message_is_malformed_and_ends_the_datagram() {
        let mut datagram = message(0x14, 0, 1, &[0; 8]);
        datagram.truncate(20);
        let mut it = frames(&datagram);
        assert!(it.next().is_some_and(|f| f.is_err()));
        assert!(it.next().is_none());
        assert!(frames(&[0; 10]).next().is_some_and(|f| f.is_err()));
        let short_len = message(0x14, 0, 1, &[]);
        let mut bad = short_len.clone();
        bad[0] = 8; // shorter than a header
        assert!(frames(&bad).next().is_some_and(|f| f.is_err()));
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn stamping_sets_the_sequence_and_adds_flags() {
        let mut m = message(0x605, NLM_F_DUMP | NLM_F_ACK, 0, &[]);
        stamp(&mut m, NLM_F_REQUEST, NLM_F_ACK, 0x0102_0304);
        assert_eq!(&m[4..12], &[5, 6, 0x01, 0x03, 4, 3, 2, 1]);
        assert_eq!(request_len(&m), Ok(16));
        assert!(request_len(&m[..12]).is_err());
    }
}
