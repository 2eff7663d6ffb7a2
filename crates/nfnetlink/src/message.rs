//! Building one nfnetlink request: `nlmsghdr`, `nfgenmsg`, then attributes.

/// Attribute flag: the payload is a list of attributes (`NLA_F_NESTED`).
pub const NLA_F_NESTED: u16 = 0x8000;
/// Attribute flag: the integer payload is big-endian (`NLA_F_NET_BYTEORDER`).
/// ipset insists on it for ports, addresses and sizes.
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;

/// Length of `struct nlmsghdr` plus `struct nfgenmsg`.
pub(crate) const HEADERS_LEN: usize = netlink::NLMSG_HDRLEN + 4;

/// An open nested attribute, closed by [`Message::end_nest`].
#[derive(Debug)]
#[must_use = "a nest must be closed with Message::end_nest"]
pub struct Nest(usize);

/// One nfnetlink request being built. The header's length and sequence
/// number are filled in by [`Message::finish`]; the socket sets the
/// `NLM_F_REQUEST`/`NLM_F_ACK`/`NLM_F_DUMP` flags it needs (and its own
/// sequence number).
///
/// ```
/// use nfnetlink::{Message, NLA_F_NET_BYTEORDER};
/// let mut m = Message::new(6, 9, 2); // IPSET_CMD_ADD, family inet
/// m.put_str(2, "KUBE-CLUSTER-IP");
/// let data = m.begin_nest(7);
/// m.put_u16_be(4 | NLA_F_NET_BYTEORDER, 80);
/// m.end_nest(data);
/// assert_eq!(m.finish(1).len(), 20 + 20 + 12);
/// ```
#[derive(Debug, Clone)]
pub struct Message {
    buf: Vec<u8>,
}

impl Message {
    /// Starts a message of type `subsystem << 8 | command` with an `nfgenmsg`
    /// for `family` (`NFPROTO_*`), version `NFNETLINK_V0` and resource id 0.
    pub fn new(subsystem: u8, command: u8, family: u8) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish
        buf.extend_from_slice(&(u16::from(subsystem) << 8 | u16::from(command)).to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes()); // nlmsg_flags, set by the socket
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq, set by finish
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
        buf.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, version, res_id (BE)
        Message { buf }
    }

    /// The message's size so far, in bytes.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Appends an attribute with a raw payload, padded to 4 bytes.
    pub fn put(&mut self, kind: u16, payload: &[u8]) {
        let len = u16::try_from(4 + payload.len()).expect("netlink attribute larger than 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// Appends a `u8` attribute.
    pub fn put_u8(&mut self, kind: u16, value: u8) {
        self.put(kind, &[value]);
    }

    /// Appends a big-endian `u16` attribute (add [`NLA_F_NET_BYTEORDER`] to
    /// `kind` where the receiver checks it).
    pub fn put_u16_be(&mut self, kind: u16, value: u16) {
        self.put(kind, &value.to_be_bytes());
    }

    /// Appends a big-endian `u32` attribute.
    pub fn put_u32_be(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_be_bytes());
    }

    /// Appends a NUL-terminated string attribute.
    pub fn put_str(&mut self, kind: u16, value: &str) {
        let mut payload = Vec::with_capacity(value.len() + 1);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
        self.put(kind, &payload);
    }

    /// Opens a nested attribute (`NLA_F_NESTED` is added to `kind`).
    pub fn begin_nest(&mut self, kind: u16) -> Nest {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        Nest(at)
    }

    /// Closes a nested attribute opened by [`Message::begin_nest`].
    pub fn end_nest(&mut self, nest: Nest) {
        let len =
            u16::try_from(self.buf.len() - nest.0).expect("nested attribute larger than 64 KiB");
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = self.buf.len().next_multiple_of(4);
        self.buf.resize(padded, 0);
    }

    /// The finished bytes, with length and sequence number set.
    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).expect("netlink message larger than 4 GiB");
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")] // golden bytes spell native-endian headers
    fn nests_pads_and_frames() {
        let mut m = Message::new(1, 2, 10);
        let n = m.begin_nest(7);
        m.put_u8(3, 0xaa);
        m.end_nest(n);
        m.put_str(2, "ab");
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &40u32.to_ne_bytes()[..], &0x0102u16.to_ne_bytes(), &0u16.to_ne_bytes(),
            &9u32.to_ne_bytes(), &0u32.to_ne_bytes(),
            &[10, 0, 0, 0],                                   // nfgenmsg
            &12u16.to_ne_bytes(), &(7u16 | NLA_F_NESTED).to_ne_bytes(),
            &5u16.to_ne_bytes(), &3u16.to_ne_bytes(), &[0xaa, 0, 0, 0],
            &7u16.to_ne_bytes(), &2u16.to_ne_bytes(), b"ab\0", &[0],
        ]
        .concat();
        assert_eq!(m.finish(9), want);
    }
}
