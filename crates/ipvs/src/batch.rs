//! Pipelined application of many changes: requests are sent in chunks of
//! up to a window of outstanding requests in one `sendmsg`, and each
//! acknowledgement is matched to its change by sequence number.

use std::collections::HashMap;

use crate::change::Change;
use crate::error::{Error, Operation};
use crate::message::{self, Kind, Reply};
use crate::socket::{Recv, Transport};

/// Most bytes of requests per `sendmsg` (well under the default send
/// buffer, which bounds one netlink `sendmsg`).
const MAX_CHUNK_BYTES: usize = 64 << 10;

/// Applies `changes` in order; one result per change.
///
/// The kernel handles the requests of one `sendmsg` one after the other
/// before the call returns, acknowledging each: a failing request fails
/// alone. Acks are queued on our socket, so a chunk never holds more
/// requests than the receive buffer has room for acks; if acks are lost
/// anyway (`ENOBUFS`), the affected changes report [`Error::AckLost`].
pub(crate) fn apply(t: &mut Transport, changes: &[Change]) -> Vec<Result<(), Error>> {
    let mut results: Vec<Option<Result<(), Error>>> = (0..changes.len()).map(|_| None).collect();
    let mut next = 0;
    let mut bytes = Vec::with_capacity(MAX_CHUNK_BYTES + 4096);
    while next < changes.len() {
        bytes.clear();
        let mut pending: HashMap<u32, usize> = HashMap::new();
        while next < changes.len() && pending.len() < t.window() && bytes.len() < MAX_CHUNK_BYTES {
            let change = &changes[next];
            match change.to_message() {
                Ok(msg) => {
                    let seq = t.next_seq();
                    message::encode(&mut bytes, t.family(), seq, Kind::Ack, msg);
                    pending.insert(seq, next);
                }
                Err(reason) => {
                    results[next] = Some(Err(Error::InvalidInput {
                        op: change.operation(),
                        object: change.object(),
                        reason,
                    }));
                }
            }
            next += 1;
        }
        if pending.is_empty() {
            continue;
        }
        match t.send(&bytes, Operation::Apply) {
            Ok(()) => collect_acks(t, changes, &mut pending, &mut results),
            Err(e) => fail_pending(changes, &mut pending, &mut results, |c| socket_error(c, &e)),
        }
    }
    results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
}

/// Reads until every pending request is acknowledged (or known lost).
fn collect_acks(
    t: &mut Transport,
    changes: &[Change],
    pending: &mut HashMap<u32, usize>,
    results: &mut [Option<Result<(), Error>>],
) {
    let mut overrun = false;
    while !pending.is_empty() {
        // After an overrun nothing more is coming for this chunk (the
        // kernel answered all of it during `send`): drain what is queued.
        let received = match t.recv(Operation::Apply, overrun) {
            Ok(Recv::Messages(m)) => m,
            Ok(Recv::Overrun) => {
                overrun = true;
                continue;
            }
            Ok(Recv::Empty) => break,
            Err(e) => return fail_pending(changes, pending, results, |c| socket_error(c, &e)),
        };
        for msg in received {
            let Some(i) = pending.get(&msg.seq).copied() else {
                continue; // a stale reply to an earlier, abandoned request
            };
            let result = match msg.reply {
                Reply::Ack => Ok(()),
                Reply::Error(errno) => Err(Error::kernel(
                    changes[i].operation(),
                    changes[i].object(),
                    errno,
                )),
                Reply::Done(_) | Reply::Data(_) | Reply::Ignored => continue,
            };
            pending.remove(&msg.seq);
            results[i] = Some(result);
        }
    }
    fail_pending(changes, pending, results, |c| Error::AckLost {
        op: c.operation(),
        object: c.object(),
    });
}

/// Ends every pending change with the error `make` builds for it.
fn fail_pending(
    changes: &[Change],
    pending: &mut HashMap<u32, usize>,
    results: &mut [Option<Result<(), Error>>],
    make: impl Fn(&Change) -> Error,
) {
    for (_, i) in pending.drain() {
        results[i] = Some(Err(make(&changes[i])));
    }
}

/// The socket failure `e` (of the whole batch), as the error of `change`.
fn socket_error(change: &Change, e: &Error) -> Error {
    Error::Io {
        op: change.operation(),
        source: std::io::Error::other(e.to_string()),
    }
}
