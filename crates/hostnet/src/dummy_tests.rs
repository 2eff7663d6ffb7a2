//! The link and address requests against a scripted kernel: golden bytes laid
//! out as the kernel's uapi (`linux/netlink.h`, `linux/if_addr.h`,
//! `linux/rtnetlink.h`) and iproute2 have them, a dump reply as
//! `inet_fill_ifaddr` writes it, and refusals matched to their addresses.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::net::IpAddr;
use std::rc::Rc;

use netlink::{NLM_F_ACK, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR, Transport};

use super::*;
use crate::rtnl::Rtnl;

const INDEX: u32 = 7;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What the scripted kernel answers to the address request for an address:
/// `None` to apply it, else the errno and extended-ack text.
type Verdict = fn(IpAddr) -> Option<(i32, Option<&'static str>)>;

/// A kernel that answers every request of a `sendmsg` in order, as
/// `netlink_rcv_skb` does (an error for a refused request, an ack when one
/// is asked for), and a dump with `dump`'s messages.
struct Kernel {
    verdict: Verdict,
    dump: Vec<Vec<u8>>,
    /// Every datagram sent, shared with the test.
    sent: Rc<RefCell<Vec<Vec<u8>>>>,
    queue: VecDeque<Vec<u8>>,
}

impl Kernel {
    fn new(verdict: Verdict) -> Self {
        Kernel {
            verdict,
            dump: Vec::new(),
            sent: Rc::default(),
            queue: VecDeque::new(),
        }
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes(b[i..i + 4].try_into().unwrap())
}

/// A message: header, then `payload`, padded.
fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut m = (len as u32).to_ne_bytes().to_vec();
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(len.next_multiple_of(4), 0);
    m
}

/// The `IFA_LOCAL` of an address request (after the 16-byte header and
/// the 8-byte `ifaddrmsg`).
fn local_of(request: &[u8]) -> IpAddr {
    let mut at = 24;
    while at + 4 <= request.len() {
        let (len, kind) = (usize::from(u16_at(request, at)), u16_at(request, at + 2));
        let value = &request[at + 4..at + len];
        if kind == 2 {
            return match value.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(value).unwrap()),
                _ => IpAddr::from(<[u8; 16]>::try_from(value).unwrap()),
            };
        }
        at += len.next_multiple_of(4);
    }
    panic!("no IFA_LOCAL in {request:?}")
}

impl Transport for Kernel {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.sent.borrow_mut().push(datagram.to_vec());
        let mut rest = datagram;
        while !rest.is_empty() {
            let len = u32_at(rest, 0) as usize;
            let request = &rest[..len];
            let (flags, seq) = (u16_at(request, 6), u32_at(request, 8));
            if flags & NLM_F_DUMP == NLM_F_DUMP {
                let mut datagram = Vec::new();
                for m in &self.dump {
                    let mut m = m.clone();
                    m[8..12].copy_from_slice(&seq.to_ne_bytes());
                    datagram.extend(m);
                }
                self.queue.push_back(datagram);
                self.queue
                    .push_back(message(NLMSG_DONE, 2, seq, &0i32.to_ne_bytes()));
            } else if let Some((errno, text)) = (self.verdict)(local_of(request)) {
                let mut payload = (-errno).to_ne_bytes().to_vec();
                payload.extend_from_slice(&request[..16]);
                let mut flags = 0x100; // NLM_F_CAPPED
                if let Some(text) = text {
                    flags |= 0x200; // NLM_F_ACK_TLVS
                    let attr = 4 + text.len() + 1;
                    payload.extend_from_slice(&(attr as u16).to_ne_bytes());
                    payload.extend_from_slice(&1u16.to_ne_bytes()); // NLMSGERR_ATTR_MSG
                    payload.extend_from_slice(text.as_bytes());
                    payload.push(0);
                    payload.resize(payload.len().next_multiple_of(4), 0);
                }
                self.queue
                    .push_back(message(NLMSG_ERROR, flags, seq, &payload));
            } else if flags & NLM_F_ACK != 0 {
                let mut payload = 0i32.to_ne_bytes().to_vec();
                payload.extend_from_slice(&request[..16]);
                self.queue
                    .push_back(message(NLMSG_ERROR, 0x100, seq, &payload));
            }
            rest = &rest[len.next_multiple_of(4)..];
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>, _nonblocking: bool) -> io::Result<()> {
        *buf = self
            .queue
            .pop_front()
            .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
        Ok(())
    }

    fn rcvbuf(&self) -> usize {
        64 << 10
    }
}

/// `RTM_NEWADDR` for 10.96.0.5/32 on link 7 (`kube-ipvs0`) as the kernel's
/// `inet_fill_ifaddr` dumps it: `ifaddrmsg` (AF_INET, /32,
/// IFA_F_PERMANENT, scope global, index 7), then `IFA_ADDRESS`,
/// `IFA_LOCAL`, `IFA_LABEL`, `IFA_FLAGS`, `IFA_CACHEINFO` (forever).
#[rustfmt::skip]
#[cfg(target_endian = "little")]
const DUMPED: [u8; 84] = [
    84, 0, 0, 0,  20, 0,  2, 0,  0, 0, 0, 0,  0, 0, 0, 0, // nlmsghdr, NLM_F_MULTI
    2, 32, 0x80, 0,  7, 0, 0, 0,                         // ifaddrmsg
    8, 0, 1, 0,  10, 96, 0, 5,                           // IFA_ADDRESS
    8, 0, 2, 0,  10, 96, 0, 5,                           // IFA_LOCAL
    15, 0, 3, 0,  b'k', b'u', b'b', b'e', b'-', b'i', b'p', b'v', b's', b'0', 0, 0, // IFA_LABEL
    8, 0, 8, 0,  0x80, 0, 0, 0,                          // IFA_FLAGS
    20, 0, 6, 0,  0xff, 0xff, 0xff, 0xff,  0xff, 0xff, 0xff, 0xff,
                  0x10, 0x27, 0, 0,  0x10, 0x27, 0, 0,   // IFA_CACHEINFO
];

fn kube_ipvs0() -> DummyLink {
    DummyLink {
        name: KUBE_IPVS0.to_owned(),
        index: INDEX,
    }
}

#[test]
#[cfg(target_endian = "little")]
fn binding_sends_what_ip_addr_add_sends() {
    let kernel = Kernel::new(|_| None);
    let sent = Rc::clone(&kernel.sent);
    let mut rtnl = Rtnl::over(kernel);
    let changes = kube_ipvs0()
        .sync_bound(
            &mut rtnl,
            BoundAddresses::default(),
            &[ip("10.96.0.10")].into(),
        )
        .unwrap();
    assert_eq!(changes.added, [ip("10.96.0.10")]);
    // `ip addr add 10.96.0.10/32 dev kube-ipvs0`: RTM_NEWADDR with
    // NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE, ifaddrmsg, IFA_LOCAL
    // then IFA_ADDRESS (iproute2's ipaddr_modify).
    #[rustfmt::skip]
    let want: [u8; 40] = [
        40, 0, 0, 0,  20, 0,  0x05, 0x06,  1, 0, 0, 0,  0, 0, 0, 0,
        2, 32, 0, 0,  7, 0, 0, 0,
        8, 0, 2, 0,  10, 96, 0, 10,
        8, 0, 1, 0,  10, 96, 0, 10,
    ];
    assert_eq!(*sent.borrow(), [want.to_vec()]);
}

#[test]
#[cfg(target_endian = "little")]
fn a_dumped_address_is_read_and_unbound_as_ip_addr_del_does() {
    let mut kernel = Kernel::new(|_| None);
    let mut other_link = DUMPED;
    other_link[20] = 3; // the same address on link 3: not ours
    kernel.dump = vec![DUMPED.to_vec(), other_link.to_vec()];
    let sent = Rc::clone(&kernel.sent);
    let mut rtnl = Rtnl::over(kernel);
    let link = kube_ipvs0();
    let bound = link.addresses(&mut rtnl).unwrap();
    assert_eq!(bound.list(), [(ip("10.96.0.5"), 32)]);
    let node = crate::addresses::node_addresses(&mut rtnl, INDEX).unwrap();
    assert_eq!(node, BTreeSet::from([ip("10.96.0.5")]));

    let changes = link.sync_bound(&mut rtnl, bound, &BTreeSet::new()).unwrap();
    assert_eq!(changes.removed, [(ip("10.96.0.5"), 32)]);
    // `ip addr del 10.96.0.5/32 dev kube-ipvs0`: RTM_DELADDR with
    // NLM_F_REQUEST|NLM_F_ACK, ifaddrmsg, IFA_LOCAL then IFA_ADDRESS with the
    // same address (iproute2's ipaddr_modify, the prefix length given).
    #[rustfmt::skip]
    let want: [u8; 24] = [
        2, 32, 0, 0,  7, 0, 0, 0,
        8, 0, 2, 0,  10, 96, 0, 5,
        8, 0, 1, 0,  10, 96, 0, 5,
    ];
    let sent = sent.borrow();
    let delete = sent.last().unwrap();
    assert_eq!(&delete[4..8], &[21, 0, 0x05, 0x00]);
    assert_eq!(&delete[16..], &want);
}

fn refusing(addr: IpAddr) -> Option<(i32, Option<&'static str>)> {
    match addr.to_string().as_str() {
        "10.96.0.5" => Some((libc::EADDRNOTAVAIL, None)),
        "10.96.0.10" => Some((libc::EEXIST, None)),
        "10.96.0.11" => Some((libc::EINVAL, Some("Invalid prefix length"))),
        _ => None,
    }
}

/// Listed addresses as the kernel dumps them, on `kube-ipvs0`.
fn listed(addrs: &[&str]) -> BoundAddresses {
    BoundAddresses(addrs.iter().map(|a| (ip(a), host_prefix(ip(a)))).collect())
}

#[test]
fn each_refusal_is_matched_to_its_address_and_the_benign_ones_pass() {
    let kernel = Kernel::new(refusing);
    let sent = Rc::clone(&kernel.sent);
    let mut rtnl = Rtnl::over(kernel);
    let link = kube_ipvs0();
    // Already gone (EADDRNOTAVAIL) and already bound (EEXIST): no error.
    let want = BTreeSet::from([ip("10.96.0.10"), ip("10.96.0.12")]);
    let changes = link
        .sync_bound(&mut rtnl, listed(&["10.96.0.5"]), &want)
        .unwrap();
    assert_eq!(changes.added, [ip("10.96.0.10"), ip("10.96.0.12")]);
    assert_eq!(changes.removed, [(ip("10.96.0.5"), 32)]);

    // One refusal among three binds: it names its address and carries the
    // kernel's text; the other requests went all the same.
    let want = BTreeSet::from([ip("10.96.0.10"), ip("10.96.0.11"), ip("10.96.0.12")]);
    let err = link
        .sync_bound(&mut rtnl, BoundAddresses::default(), &want)
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL));
    assert_eq!(
        err.to_string(),
        "add address 10.96.0.11/32 on kube-ipvs0: Invalid argument (kernel: Invalid prefix length)"
    );
    let sent = sent.borrow();
    let sent = sent.last().unwrap();
    let requests = (0..3).fold((0, 0), |(at, n), _| {
        (at + (u32_at(sent, at) as usize).next_multiple_of(4), n + 1)
    });
    assert_eq!(requests, (sent.len(), 3), "three requests in one sendmsg");
}

#[test]
fn an_unbind_refusal_is_reported_before_a_bind_refusal() {
    fn verdict(addr: IpAddr) -> Option<(i32, Option<&'static str>)> {
        match addr.to_string().as_str() {
            "10.96.0.6" => Some((libc::EPERM, None)),
            other => refusing(other.parse().unwrap()),
        }
    }
    let mut rtnl = Rtnl::over(Kernel::new(verdict));
    let err = kube_ipvs0()
        .sync_bound(
            &mut rtnl,
            listed(&["10.96.0.5", "10.96.0.6"]),
            &[ip("10.96.0.11")].into(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "remove address 10.96.0.6/32 on kube-ipvs0: Operation not permitted"
    );
}
