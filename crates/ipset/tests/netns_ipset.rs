//! The crate against the real kernel and the real `ipset` tool, inside
//! network namespaces (ipsets are per namespace). Run with
//! `tests/netns/run netns_ipset`.

#![allow(clippy::unwrap_used)] // helpers shared by the tests below panic like the tests do

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipset::{
    Contents, Entry, Errno, Error, Family, HashLimits, Ipset, ListedSet, Member, Protocol, SetName,
    SetSpec, SetType,
};
use proptest::prelude::*;
use testkit::Netns;

fn name(s: &str) -> SetName {
    s.parse().unwrap()
}

fn hash(n: &str, t: SetType, f: Family) -> SetSpec {
    SetSpec::hash(name(n), t, f, HashLimits::default()).unwrap()
}

/// kube-proxy's sets (one of each type and family it uses), plus `hash:net`,
/// each with members in `ipset save` syntax.
fn samples() -> Vec<(SetSpec, Vec<&'static str>)> {
    vec![
        (
            hash("KUBE-LOOP-BACK", SetType::HashIpPortIp, Family::Inet),
            vec![
                "10.244.1.5,tcp:8080,10.244.1.5",
                "10.244.1.6,udp:53,10.244.1.6",
            ],
        ),
        (
            hash("KUBE-CLUSTER-IP", SetType::HashIpPort, Family::Inet),
            vec!["10.96.0.10,udp:53", "10.96.0.1,tcp:443", "10.96.0.2,sctp:9"],
        ),
        (
            hash(
                "KUBE-LOAD-BALANCER-SOURCE-CIDR",
                SetType::HashIpPortNet,
                Family::Inet,
            ),
            vec![
                "203.0.113.7,tcp:443,192.0.2.0/24",
                "203.0.113.7,tcp:443,198.51.100.9",
            ],
        ),
        (
            SetSpec::bitmap_port(name("KUBE-NODE-PORT-TCP"), 0..=65535),
            vec!["30080", "31443"],
        ),
        (
            hash("KUBE-IPVS-IPS", SetType::HashIp, Family::Inet),
            vec!["10.96.0.1", "10.96.0.10"],
        ),
        (
            hash("KUBE-6-CLUSTER-IP", SetType::HashIpPort, Family::Inet6),
            vec!["fd00:10:96::a,udp:53", "::ffff:10.1.2.3,tcp:80"],
        ),
        (
            hash("KUBE-6-LOOP-BACK", SetType::HashIpPortIp, Family::Inet6),
            vec!["fd00::5,tcp:8080,fd00::5"],
        ),
        (
            hash(
                "KUBE-6-LOAD-BALANCER-SOURCE-CID",
                SetType::HashIpPortNet,
                Family::Inet6,
            ),
            vec!["2001:db8::7,tcp:443,2001:db8:1::/48"],
        ),
        (
            hash("KUBE-6-IPVS-IPS", SetType::HashIp, Family::Inet6),
            vec!["fd00:10:96::1"],
        ),
        (
            hash("NETS", SetType::HashNet, Family::Inet),
            vec!["10.0.0.0/8", "192.0.2.1"],
        ),
    ]
}

fn members(spec: &SetSpec, texts: &[&str]) -> Vec<Member> {
    texts
        .iter()
        .map(|t| Member::new(Entry::parse_for(spec.set_type(), t).unwrap()))
        .collect()
}

/// The `add` lines of `ipset save NAME`, sorted.
fn saved_adds(ns: &Netns, set: &SetName) -> BTreeSet<String> {
    ns.run(&["ipset", "save", set.as_str()])
        .lines()
        .filter(|l| l.starts_with("add "))
        .map(str::to_owned)
        .collect()
}

/// The `create` line of `ipset save NAME`.
fn saved_create(ns: &Netns, set: &SetName) -> String {
    ns.run(&["ipset", "save", set.as_str()])
        .lines()
        .find(|l| l.starts_with("create "))
        .unwrap()
        .to_owned()
}

fn add_lines(set: &SetName, members: &[Member]) -> BTreeSet<String> {
    members.iter().map(|m| format!("add {set} {m}")).collect()
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_ipset_sets_created_by_the_crate_match_ipset_save() {
    sets_created_by_the_crate_match_ipset_save();
}

/// The same on Debian's kernel, where every set type is a module the kernel
/// must load on demand.
#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipset_sets_created_by_the_crate_match_ipset_save() {
    sets_created_by_the_crate_match_ipset_save();
}

fn sets_created_by_the_crate_match_ipset_save() {
    let ns = Netns::new("ipset");
    let mut ipset = ns.enter(|| Ipset::open().unwrap());
    let (min, max) = ipset.protocol().unwrap();
    assert!(
        min <= 6 && 6 <= max,
        "kernel speaks ipset protocol {min}..{max}"
    );
    for (spec, texts) in samples() {
        let members = members(&spec, &texts);
        ipset.create(&spec).unwrap();
        ipset.create(&spec).unwrap(); // identical: accepted, like -exist
        ipset.add(&spec, &members).unwrap();
        assert!(
            saved_create(&ns, spec.name()).starts_with(&spec.to_string()),
            "{spec}"
        );
        assert_eq!(
            saved_adds(&ns, spec.name()),
            add_lines(spec.name(), &members),
            "{spec}"
        );
        assert!(ipset.test(spec.name(), &members[0].entry).unwrap());
        ipset.del(spec.name(), &[members[0].entry]).unwrap();
        ipset.del(spec.name(), &[members[0].entry]).unwrap(); // absent: ignored
        assert!(!ipset.test(spec.name(), &members[0].entry).unwrap());
        assert_eq!(
            saved_adds(&ns, spec.name()),
            add_lines(spec.name(), &members[1..]),
            "{spec}"
        );
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_ipset_sets_restored_by_ipset_are_listed_by_the_crate() {
    let ns = Netns::new("ipset");
    let mut script = String::new();
    for (spec, texts) in samples() {
        script += &format!("{}\n", spec.clone().with_comments());
        for (i, t) in texts.iter().enumerate() {
            script += &format!("add {} {t} comment \"c {i}\"\n", spec.name());
        }
    }
    script += "create OTHER hash:net,port\nadd OTHER 10.0.0.0/24,tcp:80\n";
    let file = std::env::temp_dir().join(format!("{}-restore", ns.name()));
    std::fs::write(&file, &script).unwrap();
    ns.sh(&format!("ipset restore < {}", file.display()));
    let mut ipset = ns.enter(|| Ipset::open().unwrap());
    let listed = ipset.list().unwrap();
    for (spec, texts) in samples() {
        let set = listed.iter().find(|s| s.name == *spec.name()).unwrap();
        let Contents::Known { spec: got, members } = &set.contents else {
            panic!("{set:?}")
        };
        assert!(
            got.compatible_with(&spec.clone().with_comments()),
            "{got} vs {spec}"
        );
        let want: BTreeSet<String> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| format!("add {} {t} comment \"c {i}\"", spec.name()))
            .collect();
        assert_eq!(add_lines(spec.name(), members), want);
        assert_eq!(saved_adds(&ns, spec.name()), want);
    }
    let other = listed.iter().find(|s| s.name.as_str() == "OTHER").unwrap();
    assert!(
        matches!(&other.contents, Contents::Foreign { type_name, .. } if type_name == "hash:net,port")
    );
    assert_eq!(ipset.get(&name("MISSING")).unwrap(), None);
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_ipset_sync_applies_the_diff_and_rebuilds_changed_specs() {
    let ns = Netns::new("ipset");
    let mut ipset = ns.enter(|| Ipset::open().unwrap());
    let spec = hash("KUBE-CLUSTER-IP", SetType::HashIpPort, Family::Inet);
    let first = members(
        &spec,
        &[
            "10.96.0.1,tcp:443",
            "10.96.0.10,udp:53",
            "10.96.0.10,tcp:53",
        ],
    );
    let report = ipset.sync_set(&spec, &first).unwrap();
    assert!(report.created && report.added == 3);
    assert_eq!(
        ipset.sync_set(&spec, &first).unwrap(),
        ipset::SyncReport::default()
    );

    let second = members(&spec, &["10.96.0.1,tcp:443", "10.96.0.20,tcp:80"]);
    let report = ipset.sync_set(&spec, &second).unwrap();
    assert_eq!(
        (report.added, report.deleted, report.rebuilt),
        (1, 2, false)
    );
    assert_eq!(
        saved_adds(&ns, spec.name()),
        add_lines(spec.name(), &second)
    );

    // maxelem changed: atomic rebuild through a swap, even while referenced.
    ns.run(&[
        "iptables",
        "-A",
        "INPUT",
        "-m",
        "set",
        "--match-set",
        "KUBE-CLUSTER-IP",
        "dst,dst",
        "-j",
        "ACCEPT",
    ]);
    let bigger = SetSpec::hash(
        spec.name().clone(),
        SetType::HashIpPort,
        Family::Inet,
        HashLimits {
            hashsize: 1024,
            maxelem: 131072,
        },
    )
    .unwrap();
    let report = ipset.sync_set(&bigger, &second).unwrap();
    assert!(report.rebuilt);
    assert!(saved_create(&ns, spec.name()).contains("maxelem 131072"));
    assert_eq!(
        saved_adds(&ns, spec.name()),
        add_lines(spec.name(), &second)
    );
    assert!(!ns.run(&["ipset", "list", "-n"]).contains("-TMP"));

    // A type change cannot be swapped in; the referenced set cannot go.
    let as_ip = hash("KUBE-CLUSTER-IP", SetType::HashIp, Family::Inet);
    let err = ipset
        .sync_set(&as_ip, &members(&as_ip, &["10.96.0.1"]))
        .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::BUSY), "{err}");
    assert!(
        err.to_string()
            .contains("destroy set KUBE-CLUSTER-IP: set is in use"),
        "{err}"
    );
    ns.run(&["iptables", "-F", "INPUT"]);
    let report = ipset
        .sync_set(&as_ip, &members(&as_ip, &["10.96.0.1"]))
        .unwrap();
    assert!(report.rebuilt);
    assert_eq!(
        saved_adds(&ns, spec.name()),
        BTreeSet::from(["add KUBE-CLUSTER-IP 10.96.0.1".to_owned()])
    );
    assert!(!ns.run(&["ipset", "list", "-n"]).contains("-TMP"));

    // One dump for several sets: the reconciler's path.
    let ports = SetSpec::bitmap_port(name("KUBE-NODE-PORT-UDP"), 0..=65535);
    let listed = ipset.list().unwrap();
    let find = |spec: &SetSpec| listed.iter().find(|s| s.name == *spec.name());
    let in_place = ipset
        .sync_listed(&as_ip, find(&as_ip), &members(&as_ip, &["10.96.0.1"]))
        .unwrap();
    assert_eq!(in_place, ipset::SyncReport::default());
    let created = ipset
        .sync_listed(&ports, find(&ports), &members(&ports, &["30053"]))
        .unwrap();
    assert!(created.created && created.added == 1);
    assert_eq!(
        saved_adds(&ns, ports.name()),
        BTreeSet::from(["add KUBE-NODE-PORT-UDP 30053".to_owned()])
    );
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_ipset_refused_members_fail_alone_with_typed_errors() {
    let ns = Netns::new("ipset");
    let mut ipset = ns.enter(|| Ipset::open().unwrap());
    // 300 entries into room for 100, sent in several chunks: exactly the
    // last 200 are refused, each reported with its own entry.
    let small = SetSpec::hash(
        name("SMALL"),
        SetType::HashIp,
        Family::Inet,
        HashLimits {
            hashsize: 64,
            maxelem: 100,
        },
    )
    .unwrap();
    ipset.create(&small).unwrap();
    let many: Vec<Member> = (0..300u32)
        .map(|i| {
            Member::new(Entry::Ip {
                ip: std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
            })
        })
        .collect();
    let Err(Error::Members {
        failures,
        attempted: 300,
        ..
    }) = ipset.add(&small, &many)
    else {
        panic!("expected member failures")
    };
    assert!(
        failures.iter().all(|f| f.errno == Errno::TYPE_SPECIFIC),
        "{failures:?}"
    );
    let refused: Vec<String> = failures.iter().map(|f| f.member.clone()).collect();
    let expected: Vec<String> = many[100..].iter().map(ToString::to_string).collect();
    assert_eq!(refused, expected);
    assert_eq!(
        saved_adds(&ns, small.name()),
        add_lines(small.name(), &many[..100])
    );

    let err = ipset
        .add(
            &small,
            &members(&small, &["10.0.0.9"])
                .into_iter()
                .map(|m| m.with_comment("x"))
                .collect::<Vec<_>>(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    let v6 = Member::new("fd00::1".parse().unwrap());
    assert!(matches!(
        ipset.add(&small, &[v6]).unwrap_err(),
        Error::Mismatch { .. }
    ));

    let other = SetSpec::hash(
        name("SMALL"),
        SetType::HashNet,
        Family::Inet,
        HashLimits::default(),
    )
    .unwrap();
    assert_eq!(
        ipset.create(&other).unwrap_err().errno(),
        Some(Errno::SET_EXISTS)
    );
    assert_eq!(
        ipset.flush(&name("NOPE")).unwrap_err().errno(),
        Some(Errno::NO_SUCH_SET)
    );
    ipset.destroy(&name("NOPE")).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random member sets, synced one after the other into the same set,
    /// always read back by `ipset save` exactly as the crate prints them.
    #[test]
    #[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
    fn netns_ipset_random_members_match_ipset_save(
        rounds in prop::collection::vec(
            prop::collection::vec((any::<[u8; 4]>(), 0u8..3, any::<u16>(), any::<u16>()), 0..40),
            1..4,
        )
    ) {
        let ns = Netns::new("ipset");
        let mut ipset = ns.enter(|| Ipset::open().unwrap());
        let v4 = hash("PROP", SetType::HashIpPort, Family::Inet);
        let v6 = hash("PROP6", SetType::HashIpPortNet, Family::Inet6);
        for round in rounds {
            let to_members = |six: bool| -> Vec<Member> {
                round.iter().map(|&(ip, p, port, low)| {
                    let proto = [ipset::Protocol::Tcp, ipset::Protocol::Udp, ipset::Protocol::Sctp][usize::from(p)];
                    if six {
                        let addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, u16::from(ip[0]), low).into();
                        let net = ipset::Net::new(std::net::Ipv6Addr::new(0x2001, 0xdb8, low, 0, 0, 0, 0, 1).into(), 32 + ip[1] % 97).unwrap();
                        Member::new(Entry::IpPortNet { ip: addr, proto, port, net })
                    } else {
                        Member::new(Entry::IpPort { ip: ip.into(), proto, port })
                    }
                }).collect()
            };
            for (spec, six) in [(&v4, false), (&v6, true)] {
                let wanted = to_members(six);
                ipset.sync_set(spec, &wanted).unwrap();
                prop_assert_eq!(saved_adds(&ns, spec.name()), add_lines(spec.name(), &wanted));
            }
        }
    }
}

/// Non-zero IPv6 addresses, often in the shapes where printers disagree
/// (IPv4-compatible `::a.b.c.d`, IPv4-mapped, mostly-zero).
fn v6() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u128>(),
        any::<u32>().prop_map(u128::from),
        any::<u32>().prop_map(|x| 0xffff_0000_0000 | u128::from(x)),
        any::<u16>().prop_map(|x| u128::from(x) << 64),
    ]
    .prop_filter("the kernel refuses the null address", |x| *x != 0)
    .prop_map(|x| IpAddr::V6(x.into()))
}

fn v4() -> impl Strategy<Value = IpAddr> {
    any::<u32>()
        .prop_filter("the kernel refuses the null address", |x| *x != 0)
        .prop_map(|x| IpAddr::V4(x.into()))
}

fn entry_of(set_type: SetType, six: bool) -> BoxedStrategy<Entry> {
    let ip = move || if six { v6().boxed() } else { v4().boxed() };
    let max = if six { 128u8 } else { 32 };
    let net = move || (ip(), 1..=max).prop_map(|(a, p)| ipset::Net::new(a, p).unwrap());
    let proto = prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Sctp)
    ];
    match set_type {
        SetType::HashIp => ip().prop_map(|ip| Entry::Ip { ip }).boxed(),
        SetType::HashNet => net().prop_map(|net| Entry::Net { net }).boxed(),
        SetType::BitmapPort => any::<u16>().prop_map(|port| Entry::Port { port }).boxed(),
        SetType::HashIpPort => (ip(), proto, any::<u16>())
            .prop_map(|(ip, proto, port)| Entry::IpPort { ip, proto, port })
            .boxed(),
        SetType::HashIpPortIp => (ip(), proto, any::<u16>(), ip())
            .prop_map(|(ip, proto, port, ip2)| Entry::IpPortIp {
                ip,
                proto,
                port,
                ip2,
            })
            .boxed(),
        SetType::HashIpPortNet => (ip(), proto, any::<u16>(), net())
            .prop_map(|(ip, proto, port, net)| Entry::IpPortNet {
                ip,
                proto,
                port,
                net,
            })
            .boxed(),
    }
}

/// Every supported type in both families (bitmap:port has none).
fn all_specs() -> Vec<(SetSpec, bool)> {
    let mut specs = vec![(SetSpec::bitmap_port(name("P"), 0..=65535), false)];
    for t in SetType::ALL
        .into_iter()
        .filter(|t| *t != SetType::BitmapPort)
    {
        for (family, six) in [(Family::Inet, false), (Family::Inet6, true)] {
            let n = format!("{}-{family}", t.name().replace([':', ','], "-"));
            specs.push((hash(&n, t, family), six));
        }
    }
    specs
}

fn random_contents() -> impl Strategy<Value = Vec<Vec<Entry>>> {
    all_specs()
        .into_iter()
        .map(|(spec, six)| prop::collection::vec(entry_of(spec.set_type(), six), 0..12))
        .collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Random members of every type and family: `ipset save` prints exactly
    /// what the crate prints, and the crate reads back what it wrote.
    #[test]
    #[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
    fn netns_ipset_every_type_random_members_match_ipset_save(contents in random_contents()) {
        let ns = Netns::new("ipset");
        let mut ipset = ns.enter(|| Ipset::open().unwrap());
        for ((spec, _), entries) in all_specs().iter().zip(contents) {
            let wanted: Vec<Member> = entries.into_iter().map(Member::new).collect();
            ipset.sync_set(spec, &wanted).unwrap();
            prop_assert_eq!(saved_adds(&ns, spec.name()), add_lines(spec.name(), &wanted), "{}", spec);
            let Some(ListedSet { contents: Contents::Known { members, .. }, .. }) = ipset.get(spec.name()).unwrap() else {
                panic!("{spec} not listed")
            };
            let read: BTreeSet<Entry> = members.into_iter().map(|m| m.entry).collect();
            prop_assert_eq!(read, wanted.iter().map(|m| m.entry).collect::<BTreeSet<_>>());
        }
    }
}
