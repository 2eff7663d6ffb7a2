//! The rtnetlink socket the link and address modules talk through: requests
//! built and replies parsed with `netlink-packet-route`'s types, exchanged
//! over the shared [`netlink::Socket`] (pipelined batches with each refusal
//! matched to its request, dumps redone when interrupted, single requests).

use netlink::{Body, Failure, Frame, Kernel, Malformed, NLMSG_HDRLEN, Socket, Transport};
use netlink_packet_core::{Emitable, Parseable};

use crate::dummy::LinkError;

/// `NETLINK_ROUTE`.
const NETLINK_ROUTE: isize = 0;
/// `RTM_NEWLINK`: a link created, or one listed.
pub(crate) const RTM_NEWLINK: u16 = 16;
/// `RTM_DELLINK`.
pub(crate) const RTM_DELLINK: u16 = 17;
/// `RTM_GETLINK`.
pub(crate) const RTM_GETLINK: u16 = 18;
/// `RTM_NEWADDR`: an address added, or one listed.
pub(crate) const RTM_NEWADDR: u16 = 20;
/// `RTM_DELADDR`.
pub(crate) const RTM_DELADDR: u16 = 21;
/// `RTM_GETADDR`.
pub(crate) const RTM_GETADDR: u16 = 22;
/// `NLM_F_EXCL`: fail with `EEXIST` rather than change what exists.
pub(crate) const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`.
pub(crate) const NLM_F_CREATE: u16 = 0x400;

/// An rtnetlink socket in the network namespace of the thread that opened
/// it. Every call blocks until the kernel has answered.
#[derive(Debug)]
pub struct Rtnl<T = Kernel> {
    socket: Socket<T>,
}

impl Rtnl<Kernel> {
    /// Opens an rtnetlink socket.
    ///
    /// # Errors
    /// [`LinkError::Socket`] when the socket cannot be opened.
    pub fn open() -> Result<Self, LinkError> {
        Socket::open(NETLINK_ROUTE)
            .map(|socket| Rtnl { socket })
            .map_err(LinkError::Socket)
    }
}

impl<T: Transport> Rtnl<T> {
    /// An rtnetlink socket over `transport` (the tests' scripted kernel).
    pub fn over(transport: T) -> Self {
        Rtnl {
            socket: Socket::new(transport),
        }
    }

    /// Sends one `kind` request with `flags` and returns the replies of
    /// type `reply`, parsed.
    pub(crate) fn request<M: Parseable<[u8]>>(
        &mut self,
        kind: u16,
        flags: u16,
        message: &impl Emitable,
        reply: u16,
    ) -> Result<Vec<M>, netlink::Error> {
        let mut buf = Vec::new();
        encode(kind, flags, message, &mut buf);
        let mut replies = Vec::new();
        self.socket
            .request(&mut buf, |frame| {
                replies.extend(parse(frame, reply)?);
                Ok(())
            })
            .map_err(flatten)?;
        Ok(replies)
    }

    /// Dumps with the `kind` request `message` and returns what `keep`
    /// makes of each reply of type `reply`, parsed, as it arrives: a dump of
    /// thousands of replies is never held as whole messages.
    pub(crate) fn dump<M: Parseable<[u8]>, D>(
        &mut self,
        kind: u16,
        message: &impl Emitable,
        reply: u16,
        mut keep: impl FnMut(M) -> Option<D>,
    ) -> Result<Vec<D>, netlink::Error> {
        let mut buf = Vec::new();
        encode(kind, 0, message, &mut buf);
        self.socket
            .dump(&mut buf, |frame, out| {
                out.extend(parse(frame, reply)?.and_then(&mut keep));
                Ok(())
            })
            .map_err(flatten)
    }

    /// Sends `count` requests of `kind` with `flags`, pipelined, the `i`th being
    /// `message(i)` (built as it is encoded), and returns one result per message, in order.
    pub(crate) fn batch<M: Emitable>(
        &mut self,
        kind: u16,
        flags: u16,
        count: usize,
        message: impl Fn(usize) -> M,
    ) -> Vec<Result<(), Failure>> {
        self.socket.batch(count, |i, tx| {
            encode(kind, flags, &message(i), tx);
            true
        })
    }
}

/// Appends a request of `kind` with `flags`: the netlink header (sequence
/// number and the socket's flags left to the socket), then `message`.
pub(crate) fn encode(kind: u16, flags: u16, message: &impl Emitable, out: &mut Vec<u8>) {
    let at = out.len();
    let len = NLMSG_HDRLEN + message.buffer_len();
    out.resize(at + len, 0);
    let header = &mut out[at..at + NLMSG_HDRLEN];
    header[0..4].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    header[4..6].copy_from_slice(&kind.to_ne_bytes());
    header[6..8].copy_from_slice(&flags.to_ne_bytes());
    message.emit(&mut out[at + NLMSG_HDRLEN..]);
}

/// Parses a data message of type `reply`; other messages are not ours to
/// read (`None`).
fn parse<M: Parseable<[u8]>>(frame: Frame<'_>, reply: u16) -> Result<Option<M>, Malformed> {
    match frame.body {
        Body::Data { kind, payload, .. } if kind == reply => M::parse(payload)
            .map(Some)
            .map_err(|e| Malformed(format!("rtnetlink message {kind}: {e}"))),
        _ => Ok(None),
    }
}

fn flatten(failed: netlink::Failed<Malformed>) -> netlink::Error {
    match failed {
        netlink::Failed::Netlink(e) => e,
        netlink::Failed::Caller(m) => netlink::Error::Malformed(m),
    }
}
