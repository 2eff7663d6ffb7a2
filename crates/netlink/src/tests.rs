//! The window, matching and dump logic against a scripted kernel.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io;

use crate::frame::tests::{error, message};
use crate::frame::{NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR};
use crate::{Body, Error, Failed, Failure, Nack, Socket, Transport, frames};

/// What the scripted kernel answers to one request (by the request's
/// first payload byte, which the tests use as its id).
type Verdict = fn(u8) -> Option<(i32, Option<&'static str>)>;

/// A kernel that answers every request of a `sendmsg` in order, as
/// `netlink_rcv_skb` does: an error for a refused one, an ack for one that
/// asks; a dump request is answered by the queued `dumps` script.
struct Scripted {
    verdict: Verdict,
    rcvbuf: usize,
    /// Answers queued, one datagram each.
    queue: VecDeque<Vec<u8>>,
    /// Answers that fit before the queue overflows (`ENOBUFS`).
    room: usize,
    overrun: bool,
    /// Every datagram sent, for the tests to inspect.
    sent: Vec<Vec<u8>>,
    /// Datagrams answering the next dumps (their sequence numbers set on
    /// sending).
    dumps: VecDeque<Vec<Vec<u8>>>,
    /// Reverse the answers of each `sendmsg` (not what the kernel does;
    /// matching must not depend on it).
    reverse: bool,
}

impl Scripted {
    fn new(verdict: Verdict) -> Self {
        Scripted {
            verdict,
            rcvbuf: 64 << 10, // a window of 32
            queue: VecDeque::new(),
            room: usize::MAX,
            overrun: false,
            sent: Vec::new(),
            dumps: VecDeque::new(),
            reverse: false,
        }
    }
}

impl Transport for Scripted {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.sent.push(datagram.to_vec());
        let mut answers = Vec::new();
        let mut rest = datagram;
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
            let request = &rest[..len];
            let flags = u16::from_ne_bytes([request[6], request[7]]);
            let seq = u32::from_ne_bytes(request[8..12].try_into().unwrap());
            if flags & NLM_F_DUMP == NLM_F_DUMP {
                for mut datagram in self.dumps.pop_front().unwrap() {
                    // Every message of the scripted answer gets the dump's seq.
                    let mut at = 0;
                    while at < datagram.len() {
                        let len = u32::from_ne_bytes(datagram[at..at + 4].try_into().unwrap());
                        datagram[at + 8..at + 12].copy_from_slice(&seq.to_ne_bytes());
                        at += (len as usize).next_multiple_of(4);
                    }
                    answers.push(datagram);
                }
            } else if let Some((errno, text)) = (self.verdict)(request[16]) {
                answers.push(error(request, errno, text));
            } else if flags & NLM_F_ACK != 0 {
                answers.push(message(NLMSG_ERROR, 0x100, seq, &[0; 20]));
            }
            rest = &rest[len.next_multiple_of(4)..];
        }
        if self.reverse {
            answers.reverse();
        }
        for answer in answers {
            if self.queue.len() < self.room {
                self.queue.push_back(answer);
            } else {
                self.overrun = true;
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>, _nonblocking: bool) -> io::Result<()> {
        if std::mem::take(&mut self.overrun) {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        let datagram = self
            .queue
            .pop_front()
            .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
        *buf = datagram;
        Ok(())
    }

    fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }
}

/// A request with id `id` (its first payload byte).
fn request(id: u8) -> Vec<u8> {
    message(0x605, 0, 0, &[id, 0, 0, 0])
}

fn refused(n: &Failure) -> (usize, i32, Option<&str>) {
    match n {
        Failure::Refused(Nack {
            index,
            errno,
            message,
            ..
        }) => (*index, *errno, message.as_deref()),
        other => panic!("not a refusal: {other:?}"),
    }
}

fn run_batch(kernel: Scripted, ids: &[u8]) -> (Vec<Result<(), Failure>>, Scripted) {
    let mut socket = Socket::new(kernel);
    let results = socket.batch(ids.len(), |i, tx| {
        tx.extend(request(ids[i]));
        true
    });
    (results, socket.transport)
}

#[test]
fn a_batch_is_sent_in_windows_with_only_the_last_request_acked() {
    let ids: Vec<u8> = (0..70).collect();
    let (results, kernel) = run_batch(Scripted::new(|_| None), &ids);
    assert!(results.iter().all(Result::is_ok));
    // 64 KiB of receive buffer: a window of 32 requests per sendmsg.
    let per_send: Vec<usize> = kernel.sent.iter().map(|d| frames(d).count()).collect();
    assert_eq!(per_send, [32, 32, 6]);
    let mut seqs = Vec::new();
    for datagram in &kernel.sent {
        let acked: Vec<bool> = frames(datagram)
            .map(|f| f.unwrap().flags & NLM_F_ACK != 0)
            .collect();
        assert_eq!(acked.iter().filter(|a| **a).count(), 1);
        assert!(acked.last().unwrap());
        seqs.extend(frames(datagram).map(|f| f.unwrap().seq));
    }
    assert_eq!(seqs, (1..=70).collect::<Vec<u32>>());
}

#[test]
fn a_window_ends_where_sequence_numbers_wrap() {
    let mut socket = Socket::new(Scripted::new(|id| (id == 3).then_some((1, None))));
    socket.seq = u32::MAX - 2;
    let results = socket.batch(5, |i, tx| {
        tx.extend(request(i as u8));
        true
    });
    let seqs: Vec<Vec<u32>> = (socket.transport.sent.iter())
        .map(|d| frames(d).map(|f| f.unwrap().seq).collect())
        .collect();
    assert_eq!(seqs, [vec![u32::MAX - 1, u32::MAX], vec![1, 2, 3]]);
    assert_eq!(refused(results[3].as_ref().unwrap_err()), (3, 1, None));
    assert!(results.iter().filter(|r| r.is_ok()).count() == 4);
}

#[test]
fn each_refusal_is_matched_to_its_request_in_any_order() {
    let ids: Vec<u8> = (0..40).collect();
    let mut kernel = Scripted::new(|id| match id {
        3 => Some((libc::EEXIST, None)),
        31 => Some((libc::ENOENT, Some("no such thing"))),
        35 => Some((libc::EINVAL, None)),
        _ => None,
    });
    kernel.reverse = true;
    let (results, _) = run_batch(kernel, &ids);
    let failed: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(refused)
        .collect();
    assert_eq!(
        failed,
        [
            (3, libc::EEXIST, None),
            (31, libc::ENOENT, Some("no such thing")),
            (35, libc::EINVAL, None)
        ]
    );
}

#[test]
fn the_last_request_refused_ends_its_window_too() {
    let ids: Vec<u8> = (0..32).collect();
    let (results, _) = run_batch(Scripted::new(|id| (id == 31).then_some((1, None))), &ids);
    assert_eq!(refused(results[31].as_ref().unwrap_err()), (31, 1, None));
    assert!(results[..31].iter().all(Result::is_ok));
}

#[test]
fn stale_answers_to_abandoned_requests_are_skipped() {
    let mut kernel = Scripted::new(|id| (id % 2 == 0).then_some((libc::EEXIST, None)));
    // An answer to an abandoned earlier request, queued before the batch.
    kernel
        .queue
        .push_back(message(NLMSG_ERROR, 0, 999, &(-5i32).to_ne_bytes()));
    let (results, _) = run_batch(kernel, &[1, 2, 3, 4]);
    let errors: Vec<bool> = results.iter().map(Result::is_err).collect();
    assert_eq!(errors, [false, true, false, true]);
}

#[test]
fn answers_dropped_by_an_overrun_leave_their_requests_unknown() {
    let mut kernel = Scripted::new(|id| (id < 10).then_some((libc::EEXIST, None)));
    kernel.room = 4; // only 4 answers fit: 10 refusals + the ack overflow
    let ids: Vec<u8> = (0..12).collect();
    let (results, _) = run_batch(kernel, &ids);
    for (i, r) in results.iter().enumerate() {
        match i {
            0..4 => assert_eq!(refused(r.as_ref().unwrap_err()).0, i),
            _ => assert!(matches!(r, Err(Failure::Lost)), "{i}: {r:?}"),
        }
    }
}

#[test]
fn requests_left_out_by_their_encoder_are_not_sent() {
    let mut socket = Socket::new(Scripted::new(|_| None));
    let results = socket.batch(3, |i, tx| {
        if i == 1 {
            tx.extend([1, 2, 3]); // not a whole message: dropped
            return false;
        }
        tx.extend(request(i as u8));
        true
    });
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(matches!(results[1], Err(Failure::NotSent)));
    let sent = &socket.transport.sent;
    assert_eq!(sent.len(), 1);
    assert_eq!(frames(&sent[0]).count(), 2);
}

#[test]
fn the_window_follows_the_receive_buffer_within_bounds() {
    let window = |rcvbuf| {
        let mut kernel = Scripted::new(|_| None);
        kernel.rcvbuf = rcvbuf;
        Socket::new(kernel).window()
    };
    assert_eq!(window(212_992), 104); // the default rmem
    assert_eq!(window(1 << 10), 16);
    assert_eq!(window(16 << 20), 1024);
}

#[test]
fn a_request_returns_its_data_then_its_ack_or_refusal() {
    let mut socket = Socket::new(Scripted::new(|id| (id == 9).then_some((2, Some("gone")))));
    socket.transport.queue.push_back(message(0x14, 0, 1, &[7]));
    let mut data = Vec::new();
    socket
        .request(&mut request(1), |frame| {
            if let Body::Data { payload, .. } = frame.body {
                data.push(payload.to_vec());
            }
            Ok::<_, ()>(())
        })
        .unwrap();
    assert_eq!(data, [vec![7]]);
    match socket.request(&mut request(9), |_| Ok::<_, ()>(())) {
        Err(Failed::Netlink(Error::Kernel(nack))) => {
            assert_eq!(
                (nack.seq, nack.errno, nack.message.as_deref()),
                (2, 2, Some("gone"))
            );
        }
        other => panic!("{other:?}"),
    }
}

fn dump_part(ids: &[u8], flags: u16) -> Vec<u8> {
    ids.iter()
        .flat_map(|id| message(0x14, NLM_F_MULTI | flags, 0, &[*id]))
        .collect()
}

fn done() -> Vec<u8> {
    message(NLMSG_DONE, NLM_F_MULTI, 0, &0i32.to_ne_bytes())
}

fn dump_ids(socket: &mut Socket<Scripted>) -> Result<Vec<u8>, Failed<()>> {
    socket.dump(&mut request(0), |frame, out| {
        match frame.body {
            Body::Data { payload, .. } => out.push(payload[0]),
            _ => unreachable!(),
        }
        Ok(())
    })
}

#[test]
fn a_dump_is_read_across_datagrams_to_its_done() {
    let mut socket = Socket::new(Scripted::new(|_| None));
    let mut last = dump_part(&[3], 0);
    last.extend(done());
    socket
        .transport
        .dumps
        .push_back(vec![dump_part(&[1, 2], 0), last]);
    assert_eq!(dump_ids(&mut socket).unwrap(), [1, 2, 3]);
    let flags = u16::from_ne_bytes([socket.transport.sent[0][6], socket.transport.sent[0][7]]);
    assert_eq!(flags, 0x301); // NLM_F_REQUEST | NLM_F_DUMP
}

#[test]
fn an_interrupted_dump_is_redone_and_its_entries_replaced() {
    let mut socket = Socket::new(Scripted::new(|_| None));
    let mut interrupted = dump_part(&[1], 0);
    interrupted.extend(dump_part(&[2], NLM_F_DUMP_INTR));
    interrupted.extend(done());
    let mut whole = dump_part(&[1, 3], 0);
    whole.extend(done());
    socket
        .transport
        .dumps
        .extend([vec![interrupted], vec![whole]]);
    assert_eq!(dump_ids(&mut socket).unwrap(), [1, 3]);
    assert_eq!(socket.transport.sent.len(), 2);
}

#[test]
fn a_dump_interrupted_every_time_gives_up() {
    let mut socket = Socket::new(Scripted::new(|_| None));
    for _ in 0..crate::DUMP_ATTEMPTS {
        let mut part = dump_part(&[1], NLM_F_DUMP_INTR);
        part.extend(done());
        socket.transport.dumps.push_back(vec![part]);
    }
    assert!(matches!(
        dump_ids(&mut socket),
        Err(Failed::Netlink(Error::DumpInterrupted(5)))
    ));
}

#[test]
fn a_dump_aborted_by_the_kernel_is_its_errno() {
    let mut socket = Socket::new(Scripted::new(|_| None));
    let mut part = dump_part(&[1], 0);
    part.extend(message(NLMSG_DONE, NLM_F_MULTI, 0, &(-16i32).to_ne_bytes()));
    socket.transport.dumps.push_back(vec![part]);
    let err = dump_ids(&mut socket).unwrap_err();
    assert!(
        matches!(err, Failed::Netlink(Error::Kernel(Nack { errno: 16, .. }))),
        "{err:?}"
    );
}
