//! A `NETLINK_NETFILTER` socket: acknowledged batches, requests and dumps
//! over the shared [`netlink::Socket`].

use std::convert::Infallible;
use std::io;

use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::message::HEADERS_LEN;
use crate::{Message, ParseError};

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket itself failed (open, send, receive).
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused the request.
    #[error("kernel error {errno}{}", netlink::KernelText(text.as_deref()))]
    Kernel {
        /// The errno (positive).
        errno: i32,
        /// The kernel's extended-ack text (`NLMSGERR_ATTR_MSG`), when it
        /// gave one.
        text: Option<String>,
    },
    /// The kernel's reply could not be parsed.
    #[error(transparent)]
    Malformed(#[from] ParseError),
    /// Answers were lost (the receive buffer overflowed), a dump never read
    /// consistently, or a reply was not netlink.
    #[error(transparent)]
    Netlink(netlink::Error),
}

impl From<netlink::Error> for Error {
    fn from(e: netlink::Error) -> Self {
        match e {
            netlink::Error::Io(e) => Error::Io(e),
            netlink::Error::Kernel(nack) => Error::Kernel {
                errno: nack.errno,
                text: nack.message,
            },
            other => Error::Netlink(other),
        }
    }
}

impl From<netlink::Failed<Infallible>> for Error {
    fn from(e: netlink::Failed<Infallible>) -> Self {
        match e {
            netlink::Failed::Netlink(e) => e.into(),
            netlink::Failed::Caller(never) => match never {},
        }
    }
}

/// One data message received in answer to a request or dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `nlmsg_type`: `subsystem << 8 | command`.
    pub kind: u16,
    /// The attributes, after `nlmsghdr` and `nfgenmsg`.
    pub attrs: Vec<u8>,
}

impl Reply {
    /// The data message of `frame`, if it is one.
    fn of(frame: netlink::Frame<'_>) -> Option<Self> {
        match frame.body {
            netlink::Body::Data { kind, message, .. } => Some(Reply {
                kind,
                attrs: message.get(HEADERS_LEN..).unwrap_or_default().to_vec(),
            }),
            _ => None,
        }
    }
}

/// A blocking `NETLINK_NETFILTER` socket, bound to the network namespace of
/// the thread that opened it.
#[derive(Debug)]
pub struct Socket {
    socket: netlink::Socket,
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    ///
    /// # Errors
    /// When the kernel has no netlink or refuses the socket.
    pub fn open() -> Result<Self, Error> {
        Ok(Socket {
            socket: netlink::Socket::open(NETLINK_NETFILTER)?,
        })
    }

    /// Sends every message, many per `sendmsg` (the window rule of
    /// [`netlink::Socket::batch`]), and returns one result per message, in
    /// order: `Ok(())` or the kernel's errno. A failed message does not
    /// stop the others.
    ///
    /// # Errors
    /// Only socket failures (including an overflowed receive buffer, which
    /// could hide refusals); kernel refusals are in the returned vector.
    pub fn batch<I>(&mut self, messages: I) -> Result<Vec<Result<(), i32>>, Error>
    where
        I: IntoIterator<Item = Message>,
        I::IntoIter: ExactSizeIterator,
    {
        let mut messages = messages.into_iter();
        let results = self.socket.batch(messages.len(), |_, tx| {
            messages
                .next()
                .map(|m| tx.extend_from_slice(&m.finish(0)))
                .is_some()
        });
        results
            .into_iter()
            .map(|r| match r {
                Ok(()) => Ok(Ok(())),
                Err(netlink::Failure::Refused(nack)) => Ok(Err(nack.errno)),
                Err(netlink::Failure::Socket(e)) => {
                    Err(Error::Io(io::Error::new(e.kind(), e.to_string())))
                }
                Err(netlink::Failure::Lost) => Err(Error::Netlink(netlink::Error::Lost)),
                Err(other) => Err(Error::Io(io::Error::other(other.to_string()))),
            })
            .collect()
    }

    /// Sends one request with `NLM_F_ACK` and returns the data messages the
    /// kernel answered before acknowledging it.
    ///
    /// # Errors
    /// [`Error::Kernel`] when the kernel refuses it.
    pub fn request(&mut self, message: Message) -> Result<Vec<Reply>, Error> {
        let mut replies = Vec::new();
        self.socket.request(&mut message.finish(0), |frame| {
            replies.extend(Reply::of(frame));
            Ok::<_, Infallible>(())
        })?;
        Ok(replies)
    }

    /// Sends a dump request and returns every data message until
    /// `NLMSG_DONE`; a dump the kernel flags inconsistent is redone.
    ///
    /// # Errors
    /// [`Error::Kernel`] when the kernel refuses the dump or aborts it.
    pub fn dump(&mut self, message: Message) -> Result<Vec<Reply>, Error> {
        Ok(self.socket.dump(&mut message.finish(0), |frame, out| {
            out.extend(Reply::of(frame));
            Ok::<_, Infallible>(())
        })?)
    }
}
