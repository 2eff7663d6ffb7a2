//! The thin socket layer: a `NETLINK_GENERIC` socket, the `IPVS` family id,
//! sequence numbers, and receiving whole datagrams.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::{Socket, protocols::NETLINK_GENERIC};

use crate::error::{Error, Operation};
use crate::message::{self, FAMILY_NAME, Received};

/// Receive buffer size we ask for (`SO_RCVBUFFORCE` as root, else capped
/// by `net.core.rmem_max`). Batches size their window from what we get.
const RCVBUF: usize = 8 << 20;
/// Bytes one queued acknowledgement costs against the receive buffer
/// (skb overhead included, rounded up).
const ACK_TRUESIZE: usize = 1024;
/// Most requests a batch keeps unacknowledged.
pub(crate) const MAX_WINDOW: usize = 1024;
/// User buffer for one datagram: kernel dump datagrams are at most 32 KiB.
const RECV_BUF: usize = 64 << 10;
/// How long to wait for the kernel's next reply before giving up. IPVS
/// answers synchronously, so this only fires if something is badly wrong;
/// it turns a hang into an error (`ErrorKind::TimedOut` in `Error::Io`).
const RECV_TIMEOUT: Duration = Duration::from_secs(60);

/// What one `recv` brought: the messages of a datagram, decoded
/// (`Vec<Received>`) or not (`&[u8]`).
#[derive(Debug)]
pub(crate) enum Recv<M = Vec<Received>> {
    /// The messages of one datagram.
    Messages(M),
    /// `ENOBUFS`: the receive queue overflowed and messages were dropped.
    Overrun,
    /// Nothing queued (non-blocking receive only).
    Empty,
}

/// A generic netlink socket talking to the `IPVS` family.
#[derive(Debug)]
pub(crate) struct Transport {
    sock: Socket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
    window: usize,
}

impl Transport {
    /// Opens a socket in the calling thread's network namespace and
    /// resolves the `IPVS` family there.
    pub(crate) fn open() -> Result<Self, Error> {
        let io = Error::io(Operation::Connect);
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(io)?;
        sock.bind_auto().map_err(Error::io(Operation::Connect))?;
        // Error acks then carry only the request's header, not its payload:
        // smaller acks, more of them fit in the receive buffer. Kernels
        // before 4.3 lack the option; the acks are merely bigger there.
        let _ = sock.set_cap_ack(true);
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(sock.as_fd(), RCVBUF).is_err() {
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(sock.as_fd(), RCVBUF);
        }
        let rcvbuf = sock
            .get_rx_buf_sz()
            .map_err(Error::io(Operation::Connect))?;
        let mut t = Transport {
            sock,
            family: 0,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            window: (rcvbuf / ACK_TRUESIZE / 2).clamp(16, MAX_WINDOW),
        };
        t.family = t.resolve_family()?;
        Ok(t)
    }

    /// Asks `nlctrl` for the id of the `IPVS` family. Looking it up makes
    /// the kernel try to load `ip_vs`; `ENOENT` means IPVS is unavailable.
    fn resolve_family(&mut self) -> Result<u16, Error> {
        const OP: Operation = Operation::Connect;
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK;
        header.sequence_number = seq;
        let ctrl = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_owned())],
        };
        let mut msg = NetlinkMessage::new(
            header,
            NetlinkPayload::from(GenlMessage::from_payload(ctrl)),
        );
        msg.finalize();
        let mut bytes = vec![0; msg.buffer_len()];
        msg.serialize(&mut bytes);
        self.send(&bytes, OP)?;
        let mut family = None;
        loop {
            let n = self.recv_raw(false).map_err(Error::io(OP))?;
            let mut rest = &self.buf[..n];
            while !rest.is_empty() {
                let reply = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(rest)
                    .map_err(Error::decode(OP))?;
                let len = reply.header.length as usize;
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(genl) => {
                        family = genl.payload.nlas.iter().find_map(|nla| match nla {
                            GenlCtrlAttrs::FamilyId(id) => Some(*id),
                            _ => None,
                        });
                    }
                    NetlinkPayload::Error(e) => {
                        return match (e.code, family) {
                            (None, Some(id)) => Ok(id),
                            (None, None) => Err(Error::NotAvailable),
                            (Some(code), _) if code.get() == -libc::ENOENT => {
                                Err(Error::NotAvailable)
                            }
                            (Some(code), _) => {
                                Err(Error::io(OP)(io::Error::from_raw_os_error(-code.get())))
                            }
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// The resolved family id.
    pub(crate) fn family(&self) -> u16 {
        self.family
    }

    /// How many requests may be outstanding without risking ack loss.
    pub(crate) fn window(&self) -> usize {
        self.window
    }

    /// A fresh sequence number (never 0, which the kernel uses for
    /// unsolicited messages).
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends one buffer of requests; the kernel processes them all before
    /// this returns, queueing their replies.
    pub(crate) fn send(&self, bytes: &[u8], op: Operation) -> Result<(), Error> {
        let n = self.sock.send(bytes, 0).map_err(Error::io(op))?;
        if n != bytes.len() {
            return Err(Error::io(op)(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short netlink send: {n} of {} bytes", bytes.len()),
            )));
        }
        Ok(())
    }

    /// Receives one datagram into the internal buffer; its length.
    fn recv_raw(&mut self, nonblocking: bool) -> io::Result<usize> {
        self.buf.clear();
        let flags = libc::MSG_TRUNC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        let n = loop {
            match self.sock.recv(&mut self.buf, flags) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n > self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "netlink datagram of {n} bytes truncated to {}",
                    self.buf.len()
                ),
            ));
        }
        Ok(n)
    }

    /// Receives and decodes one datagram.
    pub(crate) fn recv(&mut self, op: Operation, nonblocking: bool) -> Result<Recv, Error> {
        Ok(match self.recv_datagram(op, nonblocking)? {
            Recv::Messages(bytes) => {
                Recv::Messages(message::decode_all(bytes).map_err(Error::decode(op))?)
            }
            Recv::Overrun => Recv::Overrun,
            Recv::Empty => Recv::Empty,
        })
    }

    /// Receives one datagram, undecoded (for [`message::frames`]).
    pub(crate) fn recv_datagram(
        &mut self,
        op: Operation,
        nonblocking: bool,
    ) -> Result<Recv<&[u8]>, Error> {
        match self.recv_raw(nonblocking) {
            Ok(n) => Ok(Recv::Messages(&self.buf[..n])),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Recv::Overrun),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match nonblocking {
                true => Ok(Recv::Empty),
                false => Err(Error::io(op)(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply from the kernel in {} s", RECV_TIMEOUT.as_secs()),
                ))),
            },
            Err(e) => Err(Error::io(op)(e)),
        }
    }
}
