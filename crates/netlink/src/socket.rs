//! The socket: sequence numbers, receiving, and one request answered by
//! data and an acknowledgement.

use std::io;

use crate::error::{Error, Failed, Nack};
use crate::frame::{self, Body, Frame, NLM_F_ACK, NLM_F_REQUEST};
use crate::transport::{Kernel, RECV_TIMEOUT, Transport};

/// Bytes one queued reply costs against the receive buffer (the skb's
/// overhead included, rounded up).
const REPLY_TRUESIZE: usize = 1024;
/// Fewest and most requests a batch sends per `sendmsg`.
const MIN_WINDOW: usize = 16;
pub(crate) const MAX_WINDOW: usize = 1024;

/// What one receive brought.
pub(crate) enum Recv {
    /// A datagram, in the socket's receive buffer.
    Datagram,
    /// `ENOBUFS`: the receive queue overflowed and replies were dropped.
    Overrun,
    /// Nothing queued (non-blocking receive only).
    Empty,
}

/// A blocking netlink socket of one protocol. Each call sends its requests
/// and reads their answers before it returns; calls take `&mut self`.
#[derive(Debug)]
pub struct Socket<T = Kernel> {
    pub(crate) transport: T,
    pub(crate) seq: u32,
    window: usize,
    pub(crate) rx: Vec<u8>,
}

impl Socket<Kernel> {
    /// Opens a socket of `protocol` in the calling thread's network
    /// namespace (see [`Kernel::open`]).
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot be opened.
    pub fn open(protocol: isize) -> Result<Self, Error> {
        Ok(Socket::new(Kernel::open(protocol)?))
    }
}

impl<T: Transport> Socket<T> {
    /// A socket over `transport`. Its batch window is what half its receive
    /// buffer holds of replies (one reply costs about 1 KiB of it), between
    /// 16 and 1,024: even if every request of a `sendmsg` is refused, their
    /// answers fit.
    pub fn new(transport: T) -> Self {
        let window = (transport.rcvbuf() / REPLY_TRUESIZE / 2).clamp(MIN_WINDOW, MAX_WINDOW);
        Socket {
            transport,
            seq: 0,
            window,
            rx: Vec::new(),
        }
    }

    /// Most requests a batch sends in one `sendmsg`.
    pub fn window(&self) -> usize {
        self.window
    }

    /// A fresh sequence number (never 0, which the kernel uses for its own
    /// messages).
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// The sequence number last given out.
    pub(crate) fn current_seq(&self) -> u32 {
        self.seq
    }

    /// Receives one datagram into `self.rx`.
    pub(crate) fn recv(&mut self, nonblocking: bool) -> Result<Recv, Error> {
        match self.transport.recv(&mut self.rx, nonblocking) {
            Ok(()) => Ok(Recv::Datagram),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Recv::Overrun),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && nonblocking => Ok(Recv::Empty),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no reply from the kernel in {} s", RECV_TIMEOUT.as_secs()),
            ))),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Sends `request`, one message whose header its encoder wrote (flags
    /// and sequence number are set here), and hands every data message
    /// answering it to `on_data` until the kernel acknowledges it.
    ///
    /// # Errors
    /// [`Error::Kernel`] when the kernel refuses it, [`Error::Lost`] when
    /// its answer was dropped, [`Failed::Caller`] when `on_data` fails
    /// (the rest of the answer is still read), others from the socket.
    pub fn request<E>(
        &mut self,
        request: &mut [u8],
        mut on_data: impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), Failed<E>> {
        frame::request_len(request).map_err(Error::from)?;
        let seq = self.next_seq();
        frame::stamp(request, NLM_F_REQUEST | NLM_F_ACK, 0, seq);
        self.transport.send(request).map_err(Error::from)?;
        let mut failed = None;
        loop {
            match self.recv(false)? {
                Recv::Datagram => {}
                // Our answer was dropped: nothing else will come for it.
                Recv::Overrun => return Err(Error::Lost.into()),
                Recv::Empty => continue,
            }
            for frame in frame::frames(&self.rx) {
                let frame = frame.map_err(Error::from)?;
                if frame.seq != seq {
                    continue; // a late answer to an abandoned request
                }
                match frame.body {
                    Body::Data { .. } if failed.is_none() => {
                        failed = on_data(frame).err();
                    }
                    Body::Ack => return failed.map_or(Ok(()), |e| Err(Failed::Caller(e))),
                    Body::Error { errno, message } => {
                        return Err(Error::Kernel(Nack {
                            index: 0,
                            seq,
                            errno,
                            message: message.map(str::to_owned),
                        })
                        .into());
                    }
                    Body::Data { .. } | Body::Done(_) | Body::Ignored => {}
                }
            }
        }
    }
}
