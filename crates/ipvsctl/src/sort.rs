//! ipvsadm's order of services and real servers, reproduced exactly.
//!
//! ipvsadm sorts with `qsort` and comparators that subtract unsigned
//! values into an `int` (libipvs `ipvs_cmp_services`, `ipvs_cmp_dests`).
//! The subtraction wraps, so `10.0.0.1` sorts *after* `192.168.0.1` (their
//! difference exceeds 2^31) and the comparison is not even transitive.
//! The order is therefore whatever glibc's `qsort` (a top-down merge sort)
//! makes of that comparator, which [`merge_sort`] replays step by step.

use std::net::IpAddr;

use ipvs::{
    AddressFamily, DestinationEntry, DestinationRule, ServiceKey, ServiceRules,
    ServiceWithDestinations,
};

/// Sorts like glibc's `msort_with_tmp`: split in halves (the first one
/// `n / 2` long), sort each, merge taking from the left on `<= 0`. Any
/// comparator is fine, consistent or not.
pub(crate) fn merge_sort<T, F>(items: Vec<T>, cmp: &F) -> Vec<T>
where
    F: Fn(&T, &T) -> i32,
{
    if items.len() <= 1 {
        return items;
    }
    let mut left = items;
    let right = left.split_off(left.len() / 2);
    let (left, right) = (merge_sort(left, cmp), merge_sort(right, cmp));
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let next = if cmp(l, r) <= 0 {
            left.next()
        } else {
            right.next()
        };
        merged.extend(next);
    }
    merged.extend(left);
    merged.extend(right);
    merged
}

/// An address as libipvs holds it: four host-order words of the 16-byte
/// union, IPv4 in the first.
fn words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(v4) => [u32::from(*v4), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// `int r = a - b` with unsigned `a`, `b`: the wrapped difference as a C int.
fn c_sub(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Compares addresses the way libipvs does: all four words when the
/// *first* one is IPv6, only the first word otherwise.
fn cmp_addr(a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let n = if a.is_ipv6() { 4 } else { 1 };
    (0..n)
        .map(|i| c_sub(wa[i], wb[i]))
        .find(|r| *r != 0)
        .unwrap_or(0)
}

/// The fields libipvs keeps for a service: fwmark, family, protocol (0 for
/// fwmark services), address and port (zero for fwmark services).
fn service_fields(key: &ServiceKey) -> (u32, u16, u16, IpAddr, u16) {
    match *key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => (0, key.af().to_raw(), protocol.to_raw(), addr, port),
        ServiceKey::Fwmark { af, mark } => {
            let zero = match af {
                AddressFamily::Inet => IpAddr::from([0u8; 4]),
                AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
            };
            (mark.get(), af.to_raw(), 0, zero, 0)
        }
    }
}

/// libipvs `ipvs_cmp_services`.
pub(crate) fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> i32 {
    let (fa, afa, pa, aa, porta) = service_fields(a);
    let (fb, afb, pb, ab, portb) = service_fields(b);
    [
        c_sub(fa, fb),
        i32::from(afa) - i32::from(afb),
        i32::from(pa) - i32::from(pb),
        cmp_addr(&aa, &ab),
        i32::from(porta) - i32::from(portb),
    ]
    .into_iter()
    .find(|r| *r != 0)
    .unwrap_or(0)
}

/// libipvs `ipvs_cmp_dests`, on the address and port of two real servers.
fn cmp_dests(a: (IpAddr, u16), b: (IpAddr, u16)) -> i32 {
    match cmp_addr(&a.0, &b.0) {
        0 => i32::from(a.1) - i32::from(b.1),
        r => r,
    }
}

/// A service with its real servers, as a listing or the saved rules hold
/// it.
pub(crate) trait Row {
    /// What is held of a real server.
    type Dest;
    /// The service's key.
    fn key(&self) -> &ServiceKey;
    /// Its real servers.
    fn dests(&self) -> &[Self::Dest];
    /// Its real servers, to sort them.
    fn dests_mut(&mut self) -> &mut Vec<Self::Dest>;
    /// A real server's address and port.
    fn endpoint(dest: &Self::Dest) -> (IpAddr, u16);
}

impl Row for ServiceWithDestinations {
    type Dest = DestinationEntry;
    fn key(&self) -> &ServiceKey {
        &self.service.service.key
    }
    fn dests(&self) -> &[DestinationEntry] {
        &self.destinations
    }
    fn dests_mut(&mut self) -> &mut Vec<DestinationEntry> {
        &mut self.destinations
    }
    fn endpoint(d: &DestinationEntry) -> (IpAddr, u16) {
        (d.destination.addr, d.destination.port)
    }
}

impl Row for ServiceRules {
    type Dest = DestinationRule;
    fn key(&self) -> &ServiceKey {
        &self.service.key
    }
    fn dests(&self) -> &[DestinationRule] {
        &self.destinations
    }
    fn dests_mut(&mut self) -> &mut Vec<DestinationRule> {
        &mut self.destinations
    }
    fn endpoint(d: &DestinationRule) -> (IpAddr, u16) {
        (d.addr, d.port)
    }
}

/// The table in ipvsadm's order: services sorted, and each one's real
/// servers sorted.
pub(crate) fn ipvsadm_order<R: Row>(table: Vec<R>) -> Vec<R> {
    let table = merge_sort(table, &|a: &R, b: &R| cmp_services(a.key(), b.key()));
    table
        .into_iter()
        .map(|mut s| {
            let dests = std::mem::take(s.dests_mut());
            *s.dests_mut() = merge_sort(dests, &|a, b| cmp_dests(R::endpoint(a), R::endpoint(b)));
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::Protocol;

    fn key(s: &str) -> ServiceKey {
        let (addr, port) = s.rsplit_once(':').unwrap();
        let addr = addr.trim_matches(|c| c == '[' || c == ']');
        ServiceKey::inet(Protocol::Tcp, addr.parse().unwrap(), port.parse().unwrap())
    }

    #[test]
    fn merge_sort_is_stable_and_sorts() {
        let v = vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')];
        let sorted = merge_sort(v, &|a: &(i32, char), b| a.0 - b.0);
        assert_eq!(sorted, [(1, 'b'), (1, 'e'), (2, 'd'), (3, 'a'), (3, 'c')]);
    }

    #[test]
    fn wrapping_subtraction_puts_10_after_192_like_ipvsadm() {
        let keys = vec![
            key("10.0.0.1:80"),
            key("192.168.0.1:80"),
            key("10.0.0.2:80"),
        ];
        let sorted = merge_sort(keys, &cmp_services);
        let shown: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["TCP 192.168.0.1:80", "TCP 10.0.0.1:80", "TCP 10.0.0.2:80"]
        );
    }

    #[test]
    fn fwmark_services_follow_protocol_services_and_ipv4_precedes_ipv6() {
        let fw4 = ServiceKey::fwmark(AddressFamily::Inet, 5).unwrap();
        let fw6 = ServiceKey::fwmark(AddressFamily::Inet6, 5).unwrap();
        let fw1 = ServiceKey::fwmark(AddressFamily::Inet6, 1).unwrap();
        let v6 = key("[2001:db8::1]:80");
        let udp = ServiceKey::inet(Protocol::Udp, "10.0.0.1".parse().unwrap(), 53);
        let sorted = merge_sort(
            vec![fw6, fw4, v6, fw1, udp, key("10.0.0.1:80")],
            &cmp_services,
        );
        assert_eq!(sorted, [key("10.0.0.1:80"), udp, v6, fw1, fw4, fw6]);
    }

    #[test]
    fn ipv6_addresses_compare_word_by_word() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(cmp_addr(&a, &b) < 0);
        assert!(cmp_addr(&b, &a) > 0);
        assert_eq!(cmp_addr(&a, &a), 0);
    }
}
