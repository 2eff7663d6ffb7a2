//! Dumps: multi-part answers read until `NLMSG_DONE`, redone when the
//! kernel flags them inconsistent (`NLM_F_DUMP_INTR`) or replies were
//! dropped.

use crate::error::{Error, Failed, Nack};
use crate::frame::{self, Body, Frame, NLM_F_DUMP, NLM_F_REQUEST};
use crate::socket::{Recv, Socket};
use crate::transport::Transport;

/// How many times a dump is tried before [`Error::DumpInterrupted`].
pub const DUMP_ATTEMPTS: u32 = 5;

impl<T: Transport> Socket<T> {
    /// Sends the dump `request` (one message whose header its encoder
    /// wrote; flags and sequence number are set here) and hands each data
    /// message of the answer to `decode`, which adds what it means to the
    /// entries returned. A dump the kernel flags inconsistent
    /// (`NLM_F_DUMP_INTR`), or during which replies were dropped
    /// (`ENOBUFS`), is read to its end and redone from scratch, up to
    /// [`DUMP_ATTEMPTS`] times; a netlink socket runs one dump at a time.
    ///
    /// # Errors
    /// [`Error::Kernel`] when the kernel refuses or aborts the dump,
    /// [`Error::DumpInterrupted`], [`Failed::Caller`] with `decode`'s first
    /// error (the dump is read to its end first), others from the socket.
    pub fn dump<D, E>(
        &mut self,
        request: &mut [u8],
        mut decode: impl FnMut(Frame<'_>, &mut Vec<D>) -> Result<(), E>,
    ) -> Result<Vec<D>, Failed<E>> {
        frame::request_len(request).map_err(Error::from)?;
        let mut entries = Vec::new();
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            frame::stamp(request, NLM_F_REQUEST | NLM_F_DUMP, 0, seq);
            self.transport.send(request).map_err(Error::from)?;
            entries.clear();
            if self.read_dump(seq, &mut |frame| decode(frame, &mut entries))? {
                return Ok(entries);
            }
        }
        Err(Error::DumpInterrupted(DUMP_ATTEMPTS).into())
    }

    /// Reads one dump's answer; false when it must be redone. Answers to
    /// other sequence numbers (an abandoned earlier request) are skipped.
    fn read_dump<E>(
        &mut self,
        seq: u32,
        on_data: &mut dyn FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<bool, Failed<E>> {
        let mut interrupted = false;
        let mut failed = None;
        loop {
            match self.recv(false)? {
                Recv::Datagram => {}
                // Dump replies are flow-controlled by the kernel, so what was
                // dropped was something else; redo the dump to be sure, once
                // this one has ended (a new dump would get EBUSY before).
                Recv::Overrun | Recv::Empty => {
                    interrupted = true;
                    continue;
                }
            }
            for frame in frame::frames(&self.rx) {
                let frame = frame.map_err(Error::from)?;
                if frame.seq != seq {
                    continue;
                }
                interrupted |= frame.interrupted();
                match frame.body {
                    Body::Data { .. } if failed.is_none() && !interrupted => {
                        failed = on_data(frame).err();
                    }
                    Body::Done(0) | Body::Ack => {
                        return match failed {
                            Some(e) => Err(Failed::Caller(e)),
                            None => Ok(!interrupted),
                        };
                    }
                    Body::Done(errno) => return Err(nack(seq, errno, None).into()),
                    Body::Error { errno, message } => {
                        return Err(nack(seq, errno, message).into());
                    }
                    Body::Data { .. } | Body::Ignored => {}
                }
            }
        }
    }
}

fn nack(seq: u32, errno: i32, message: Option<&str>) -> Error {
    Error::Kernel(Nack {
        index: 0,
        seq,
        errno,
        message: message.map(str::to_owned),
    })
}
