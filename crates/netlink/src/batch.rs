//! Pipelined batches: many requests per `sendmsg`, each answer matched to
//! its request by sequence number.
//!
//! The window rule: a `sendmsg` carries at most [`Socket::window`] requests
//! and about 64 KiB, and only its last request asks for an acknowledgement
//! (`NLM_F_ACK`). The kernel handles the requests of one `sendmsg` in
//! order before the call returns (`netlink_rcv_skb`), answering each
//! refused request with an error whether or not it asked for an ack, so the
//! answers to a chunk are its refusals and the last request's
//! acknowledgement or error, all queued by the time the send returns. Once
//! the last request's answer has arrived, what else is queued is read
//! without waiting (so the order of the answers does not matter), and every
//! request of the chunk without an error succeeded. The window keeps the
//! worst case (every request refused) within the receive buffer. One
//! acknowledgement per `sendmsg` rather than per request saves the kernel an
//! answer, and us a `recv`, per request.

use std::sync::Arc;

use crate::error::{Failure, Nack};
use crate::frame::{self, Body, NLM_F_ACK, NLM_F_REQUEST};
use crate::socket::{Recv, Socket};
use crate::transport::Transport;

/// Most bytes of requests per `sendmsg` (well under the default send
/// buffer, which bounds one netlink `sendmsg`).
const CHUNK_BYTES: usize = 64 << 10;

/// The requests of one `sendmsg`.
#[derive(Debug, Default)]
struct Chunk {
    /// Sequence number of its first request; the others follow.
    first_seq: u32,
    /// Its requests in order, by index in the batch.
    indices: Vec<usize>,
}

impl Chunk {
    /// The position in the chunk of the request with `seq`.
    fn position(&self, seq: u32) -> Option<usize> {
        let i = seq.wrapping_sub(self.first_seq) as usize;
        (i < self.indices.len()).then_some(i)
    }
}

impl<T: Transport> Socket<T> {
    /// Sends `count` requests and returns one result per request, in
    /// order: a refused request fails alone and the others go on. `encode`
    /// appends request `i` to the buffer (its header written; flags and
    /// sequence number are set here), or appends nothing and returns false
    /// to leave it out ([`Failure::NotSent`]). See the module's window rule.
    ///
    /// When replies are dropped anyway (`ENOBUFS`), the requests of that
    /// `sendmsg` without an answer report [`Failure::Lost`]; when the
    /// socket fails, the requests not yet answered report
    /// [`Failure::Socket`] and nothing more is sent.
    pub fn batch(
        &mut self,
        count: usize,
        mut encode: impl FnMut(usize, &mut Vec<u8>) -> bool,
    ) -> Vec<Result<(), Failure>> {
        let mut results: Vec<Result<(), Failure>> = Vec::with_capacity(count);
        let mut tx = Vec::with_capacity(CHUNK_BYTES + 4096);
        while results.len() < count {
            let chunk = self.fill(&mut tx, count, &mut encode, &mut results);
            if chunk.indices.is_empty() {
                continue;
            }
            let sent = self.transport.send(&tx).map_err(crate::Error::Io);
            let Err(e) = sent.and_then(|()| self.answers(&chunk, &mut results)) else {
                continue;
            };
            let failure = match e {
                crate::Error::Io(e) => Failure::Socket(Arc::new(e)),
                other => Failure::Socket(Arc::new(std::io::Error::other(other.to_string()))),
            };
            for &i in &chunk.indices {
                if results[i].is_ok() {
                    results[i] = Err(failure.clone());
                }
            }
            results.resize_with(count, || Err(failure.clone()));
        }
        results
    }

    /// Encodes the next chunk into `tx`: up to the window and about 64 KiB
    /// of requests, the last asking for an acknowledgement. A request sent
    /// gets `Ok` in `results` until an answer says otherwise.
    fn fill(
        &mut self,
        tx: &mut Vec<u8>,
        count: usize,
        encode: &mut impl FnMut(usize, &mut Vec<u8>) -> bool,
        results: &mut Vec<Result<(), Failure>>,
    ) -> Chunk {
        tx.clear();
        let mut chunk = Chunk::default();
        let mut last_at = 0;
        while results.len() < count && chunk.indices.len() < self.window() && tx.len() < CHUNK_BYTES
        {
            // A chunk's sequence numbers are consecutive: end it where they
            // wrap (0 is skipped).
            if !chunk.indices.is_empty() && self.current_seq() == u32::MAX {
                break;
            }
            let (i, at) = (results.len(), tx.len());
            let whole =
                |tx: &[u8]| frame::request_len(&tx[at..]).is_ok_and(|len| at + len == tx.len());
            if encode(i, tx) && whole(tx) {
                let seq = self.next_seq();
                if chunk.indices.is_empty() {
                    chunk.first_seq = seq;
                }
                frame::stamp(&mut tx[at..], NLM_F_REQUEST, NLM_F_ACK, seq);
                chunk.indices.push(i);
                last_at = at;
                results.push(Ok(()));
                // Messages are 4-byte aligned within a datagram.
                tx.resize(tx.len().next_multiple_of(4), 0);
            } else {
                tx.truncate(at);
                results.push(Err(Failure::NotSent));
            }
        }
        if !chunk.indices.is_empty() {
            frame::stamp(&mut tx[last_at..], NLM_F_ACK, 0, self.current_seq());
        }
        chunk
    }

    /// Reads the answers to `chunk`, recording each refusal in `results`:
    /// waits for the last request's answer, then reads whatever else is
    /// queued. When replies were dropped, the requests without an answer
    /// are marked [`Failure::Lost`]. On a socket error, the requests
    /// without an answer are left `Ok` for the caller.
    fn answers(
        &mut self,
        chunk: &Chunk,
        results: &mut [Result<(), Failure>],
    ) -> Result<(), crate::Error> {
        let mut answered = vec![false; chunk.indices.len()];
        let last = answered.len() - 1;
        let mut overrun = false;
        loop {
            // Once the last request is answered, or after an overrun, nothing
            // more is coming for this chunk (the kernel answered all of it
            // during the send): drain what is queued without waiting, so
            // that an answer queued after the last request's still counts.
            match self.recv(answered[last] || overrun)? {
                Recv::Datagram => {}
                Recv::Overrun => {
                    overrun = true;
                    continue;
                }
                Recv::Empty => break,
            }
            for frame in frame::frames(&self.rx) {
                let frame = frame?;
                let Some(i) = chunk.position(frame.seq) else {
                    continue; // an answer to an earlier, abandoned request
                };
                let index = chunk.indices[i];
                match frame.body {
                    Body::Ack => {}
                    Body::Error { errno, message } => {
                        results[index] = Err(Failure::Refused(Nack {
                            index,
                            seq: frame.seq,
                            errno,
                            message: message.map(str::to_owned),
                        }));
                    }
                    Body::Data { .. } | Body::Done(_) | Body::Ignored => continue,
                }
                answered[i] = true;
            }
        }
        if answered[last] && !overrun {
            return Ok(());
        }
        for (i, &index) in chunk.indices.iter().enumerate() {
            if !answered[i] {
                results[index] = Err(Failure::Lost);
            }
        }
        Ok(())
    }
}
