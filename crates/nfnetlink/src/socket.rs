//! A blocking `NETLINK_NETFILTER` socket: acknowledged batches and dumps.

use std::io;

use netlink_sys::{Socket as NlSocket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::message::{HEADERS_LEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN};
use crate::{Message, ParseError};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Most bytes of requests sent in one `sendmsg`.
const BATCH_BYTES: usize = 64 * 1024;
/// Most requests sent in one `sendmsg`: even if every one fails, their
/// error answers (about 1 KiB of socket memory each) fit the default
/// 208 KiB receive buffer.
const BATCH_MESSAGES: usize = 128;
const RECV_BYTES: usize = 256 * 1024;

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket itself failed (open, send, receive).
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused the request with this errno (positive).
    #[error("kernel error {0}")]
    Kernel(i32),
    /// The kernel's reply could not be parsed.
    #[error(transparent)]
    Malformed(#[from] ParseError),
}

/// One data message received in answer to a request or dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `nlmsg_type`: `subsystem << 8 | command`.
    pub kind: u16,
    /// The attributes, after `nlmsghdr` and `nfgenmsg`.
    pub attrs: Vec<u8>,
}

/// A blocking `NETLINK_NETFILTER` socket, bound to the network namespace of
/// the thread that opened it.
#[derive(Debug)]
pub struct Socket {
    sock: NlSocket,
    next_seq: u32,
    rx: Vec<u8>,
}

/// One message parsed from a receive buffer.
enum Incoming<'a> {
    /// An acknowledgement: 0 for success or a positive errno.
    Ack { seq: u32, errno: i32 },
    /// The end of a dump, with its status.
    Done { seq: u32, errno: i32 },
    /// Data.
    Data {
        seq: u32,
        kind: u16,
        attrs: &'a [u8],
    },
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    ///
    /// # Errors
    /// When the kernel has no netlink or refuses the socket.
    pub fn open() -> Result<Self, Error> {
        let mut sock = NlSocket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Acknowledgements of failed requests need not echo the request.
        sock.set_cap_ack(true)?;
        Ok(Socket {
            sock,
            next_seq: 1,
            rx: Vec::with_capacity(RECV_BYTES),
        })
    }

    fn seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        seq
    }

    /// Sends every message, many per `sendmsg`, and returns one result per
    /// message, in order: `Ok(())` or the kernel's errno. A failed message
    /// does not stop the others.
    ///
    /// The kernel answers a failed request whether or not it asked for an
    /// acknowledgement, so only the last message of each `sendmsg` carries
    /// `NLM_F_ACK`: its answer marks the end of that chunk's errors. This
    /// keeps the receive buffer small (every answer costs about a kilobyte
    /// of socket memory) and the kernel's work to one answer per chunk.
    ///
    /// # Errors
    /// Only socket failures (including an overflowed receive buffer, which
    /// could hide refusals) and unparsable replies; kernel refusals are in
    /// the returned vector.
    pub fn batch(
        &mut self,
        messages: impl IntoIterator<Item = Message>,
    ) -> Result<Vec<Result<(), i32>>, Error> {
        let mut results = Vec::new();
        let mut chunk: Vec<Message> = Vec::with_capacity(BATCH_MESSAGES);
        let mut bytes = 0;
        for message in messages {
            bytes += message.size();
            chunk.push(message);
            if chunk.len() == BATCH_MESSAGES || bytes >= BATCH_BYTES {
                self.send_chunk(&mut chunk, &mut results)?;
                bytes = 0;
            }
        }
        if !chunk.is_empty() {
            self.send_chunk(&mut chunk, &mut results)?;
        }
        Ok(results)
    }

    fn send_chunk(
        &mut self,
        chunk: &mut Vec<Message>,
        results: &mut Vec<Result<(), i32>>,
    ) -> Result<(), Error> {
        let base = results.len();
        let count = chunk.len();
        let first_seq = self.next_seq;
        let mut buf = Vec::with_capacity(BATCH_BYTES + 4096);
        for (i, mut message) in chunk.drain(..).enumerate() {
            let last = i + 1 == count;
            message.add_flags(if last {
                NLM_F_REQUEST | NLM_F_ACK
            } else {
                NLM_F_REQUEST
            });
            let seq = self.seq();
            buf.extend_from_slice(&message.finish(seq));
        }
        self.sock.send(&buf, 0)?;
        results.resize(base + count, Ok(()));
        let mut done = false;
        while !done {
            self.receive(|incoming| {
                if let Incoming::Ack { seq, errno } = incoming {
                    let index = seq.wrapping_sub(first_seq) as usize;
                    if index < count {
                        if errno != 0 {
                            results[base + index] = Err(errno);
                        }
                        done |= index + 1 == count;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Sends one request with `NLM_F_ACK` and returns the data messages the
    /// kernel answered before acknowledging it.
    ///
    /// # Errors
    /// [`Error::Kernel`] when the kernel refuses it.
    pub fn request(&mut self, mut message: Message) -> Result<Vec<Reply>, Error> {
        message.add_flags(NLM_F_REQUEST | NLM_F_ACK);
        self.exchange(message, |incoming, want| match incoming {
            Incoming::Ack { seq, errno } if *seq == want => Some(*errno),
            _ => None,
        })
    }

    /// Sends a dump request and returns every data message until
    /// `NLMSG_DONE`.
    ///
    /// # Errors
    /// [`Error::Kernel`] when the kernel refuses the dump or aborts it.
    pub fn dump(&mut self, mut message: Message) -> Result<Vec<Reply>, Error> {
        message.add_flags(NLM_F_REQUEST | NLM_F_DUMP);
        self.exchange(message, |incoming, want| match incoming {
            Incoming::Ack { seq, errno } | Incoming::Done { seq, errno } if *seq == want => {
                Some(*errno)
            }
            _ => None,
        })
    }

    /// Sends `message`, collects data replies with its sequence number until
    /// `end` returns the final status.
    fn exchange(
        &mut self,
        message: Message,
        end: impl Fn(&Incoming<'_>, u32) -> Option<i32>,
    ) -> Result<Vec<Reply>, Error> {
        let seq = self.seq();
        self.sock.send(&message.finish(seq), 0)?;
        let mut replies = Vec::new();
        let mut status = None;
        while status.is_none() {
            self.receive(|incoming| {
                if let Some(errno) = end(&incoming, seq) {
                    status = Some(errno);
                } else if let Incoming::Data {
                    seq: s,
                    kind,
                    attrs,
                } = incoming
                    && s == seq
                {
                    replies.push(Reply {
                        kind,
                        attrs: attrs.to_vec(),
                    });
                }
                Ok(())
            })?;
        }
        match status {
            Some(0) | None => Ok(replies),
            Some(errno) => Err(Error::Kernel(errno)),
        }
    }

    /// Receives one datagram and hands every message in it to `each`.
    fn receive(
        &mut self,
        mut each: impl FnMut(Incoming<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.rx.clear();
        self.sock.recv(&mut self.rx, 0)?;
        let mut rest = &self.rx[..];
        while rest.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len < NLMSG_HDRLEN || len > rest.len() {
                return Err(ParseError("netlink message length out of bounds").into());
            }
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
            let body = &rest[NLMSG_HDRLEN..len];
            let incoming = match kind {
                NLMSG_ERROR => Incoming::Ack {
                    seq,
                    errno: status(body)?,
                },
                NLMSG_DONE => Incoming::Done {
                    seq,
                    errno: status(body).unwrap_or(0),
                },
                _ => Incoming::Data {
                    seq,
                    kind,
                    attrs: rest.get(HEADERS_LEN..len).unwrap_or_default(),
                },
            };
            each(incoming)?;
            rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        }
        Ok(())
    }
}

/// The positive errno in an `nlmsgerr` or `NLMSG_DONE` payload.
fn status(body: &[u8]) -> Result<i32, ParseError> {
    body.get(..4)
        .and_then(|b| b.try_into().ok())
        .map(|b| i32::from_ne_bytes(b).wrapping_neg())
        .ok_or(ParseError("truncated netlink status"))
}
