//! The writer against the real tools, inside network namespaces: both
//! backends, both families, cross-checked with the real `iptables-save`.

#![allow(clippy::unwrap_used)] // helpers of a test binary panic to report, like the tests

use iptables::{
    Backend, Chain, ChainName, DesiredTable, Error, Family, Iptables, Jump, LineOrigin, Ownership,
    Rule, Ruleset, Table, TableState,
};
use testkit::Netns;

const SAVED: &str = include_str!("../testdata/kube-proxy-ipvs.nft.save");
const BACKENDS: [Backend; 2] = [Backend::Nft, Backend::Legacy];

/// The ipsets the captured kube-proxy rules match on.
const SETS: &[(&str, &str)] = &[
    ("KUBE-LOOP-BACK", "hash:ip,port,ip"),
    ("KUBE-LOAD-BALANCER", "hash:ip,port"),
    ("KUBE-LOAD-BALANCER-LOCAL", "hash:ip,port"),
    ("KUBE-NODE-PORT-LOCAL-TCP", "bitmap:port"),
    ("KUBE-NODE-PORT-TCP", "bitmap:port"),
    ("KUBE-CLUSTER-IP", "hash:ip,port"),
    ("KUBE-LOAD-BALANCER-FW", "hash:ip,port"),
    ("KUBE-LOAD-BALANCER-SOURCE-CIDR", "hash:ip,port,net"),
    ("KUBE-HEALTH-CHECK-NODE-PORT", "bitmap:port"),
    ("KUBE-EXTERNAL-IP", "hash:ip,port"),
    ("KUBE-EXTERNAL-IP-LOCAL", "hash:ip,port"),
    ("KUBE-IPVS-IPS", "hash:ip"),
];

fn kube_ownership() -> Ownership {
    Ownership::prefixes(["KUBE-"])
}

/// The desired table holding exactly the `KUBE-` chains and jumps of `state`.
fn desired_from(state: &TableState) -> DesiredTable {
    DesiredTable::from_current(state, kube_ownership())
}

fn reference(table: Table) -> TableState {
    Ruleset::parse(SAVED)
        .unwrap()
        .tables
        .remove(&table)
        .unwrap()
}

fn save(ns: &Netns, family: Family, backend: Backend, table: Table) -> (String, TableState) {
    let tool = format!("{}-{}-save", family.command(), backend_name(backend));
    let text = ns.run(&[&tool, "-t", table.as_str()]);
    let state = Ruleset::parse(&text)
        .unwrap()
        .tables
        .remove(&table)
        .unwrap();
    (text, state)
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Nft => "nft",
        Backend::Legacy => "legacy",
    }
}

fn restore(ns: &Netns, family: Family, backend: Backend, text: &str) {
    let tool = format!("{}-{}-restore", family.command(), backend_name(backend));
    let path = std::env::temp_dir().join(format!("{}-seed", ns.name()));
    std::fs::write(&path, text).unwrap();
    ns.sh(&format!("{tool} --noflush < {}", path.display()));
    std::fs::remove_file(path).unwrap();
}

/// A foreign chain and a jump to it in INPUT, as another program would have.
const FOREIGN: &str = "*filter\n:SOMEONE-ELSE - [0:0]\n-A INPUT -s 192.0.2.1/32 -j SOMEONE-ELSE\n\
    -A SOMEONE-ELSE -p tcp -m tcp --dport 22 -m comment --comment \"default/svc:http cluster IP\" -j ACCEPT\nCOMMIT\n";

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_applies_kube_proxy_ipvs_rules_with_both_backends() {
    for backend in BACKENDS {
        let ns = Netns::new("ipt");
        for (name, kind) in SETS {
            let range: &[&str] = if kind.starts_with("bitmap") {
                &["range", "0-65535"]
            } else {
                &[]
            };
            ns.run(&[&["ipset", "create", name, kind][..], range].concat());
        }
        restore(&ns, Family::V4, backend, FOREIGN);
        let mut ipt = Iptables::new(Family::V4, backend);
        for table in [Table::Nat, Table::Filter] {
            let desired = desired_from(&reference(table));
            let plan = ns
                .enter(|| ipt.sync(&desired))
                .unwrap()
                .expect("a first sync writes");
            assert_eq!(plan.rewritten.len(), desired.chains.len());
            let (text, state) = save(&ns, Family::V4, backend, table);
            assert_eq!(state, reference(table), "{backend:?} {table}:\n{text}");
            assert_eq!(Backend::from_save_header(&text), Some(backend));
            assert_eq!(
                ns.enter(|| ipt.sync(&desired)).unwrap(),
                None,
                "second sync of {table}"
            );
        }
    }
}

fn v6_desired() -> DesiredTable {
    let mut nat = DesiredTable::new(Table::Nat, kube_ownership());
    nat.chains.push(Chain {
        name: "KUBE-SERVICES".parse().unwrap(),
        rules: vec![Rule::parse("-s ::1/128 -j RETURN").unwrap()],
    });
    nat.chains.push(Chain {
        name: "KUBE-MARK-MASQ".parse().unwrap(),
        // Not how ip6tables-save prints it: the writer must learn that.
        rules: vec![Rule::parse("-j MARK --or-mark 0x004000").unwrap()],
    });
    for from in ["PREROUTING", "OUTPUT"] {
        nat.jumps.push(Jump {
            from: from.parse().unwrap(),
            rule: Rule::parse(
                r#"-m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#,
            )
            .unwrap(),
        });
    }
    nat
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_ip6tables_with_both_backends() {
    for backend in BACKENDS {
        let ns = Netns::new("ip6t");
        let mut ipt = Iptables::new(Family::V6, backend);
        let desired = v6_desired();
        ns.enter(|| ipt.sync(&desired))
            .unwrap()
            .expect("a first sync writes");
        let (text, state) = save(&ns, Family::V6, backend, Table::Nat);
        let services = state.chain("KUBE-SERVICES").unwrap();
        assert_eq!(services.rules, desired.chains[0].rules, "{text}");
        assert_eq!(
            state.chain("KUBE-MARK-MASQ").unwrap().rules,
            [Rule::parse("-j MARK --set-xmark 0x4000/0x4000").unwrap()],
            "{text}"
        );
        for from in ["PREROUTING", "OUTPUT"] {
            assert_eq!(state.chain(from).unwrap().rules.len(), 1, "{from}: {text}");
        }
        assert_eq!(
            ns.enter(|| ipt.sync(&desired)).unwrap(),
            None,
            "{backend:?}: learned the saved form"
        );
        // The other family's tables are untouched.
        let (_, v4) = save(&ns, Family::V4, backend, Table::Nat);
        assert!(v4.chain("KUBE-SERVICES").is_none());
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_changes_touch_only_our_changed_chains_and_keep_foreign_rules() {
    for backend in BACKENDS {
        let ns = Netns::new("iptown");
        // Someone else's chain and jumps, an old chain of ours, a duplicate jump.
        restore(
            &ns,
            Family::V4,
            backend,
            "*nat\n:DOCKER - [0:0]\n:KUBE-OLD - [0:0]\n:KUBE-SERVICES - [0:0]\n\
             -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A OUTPUT -j KUBE-OLD\n-A DOCKER -i docker0 -j RETURN\n-A KUBE-OLD -j RETURN\nCOMMIT\n",
        );
        let (_, before) = save(&ns, Family::V4, backend, Table::Nat);
        let mut ipt = Iptables::new(Family::V4, backend);
        let mut desired = v6_desired();
        desired.chains[0].rules = vec![Rule::parse("-s 127.0.0.0/8 -j RETURN").unwrap()];
        let plan = ns.enter(|| ipt.sync(&desired)).unwrap().unwrap();
        assert_eq!(plan.deleted, ["KUBE-OLD".parse::<ChainName>().unwrap()]);
        assert_eq!(
            plan.rules_deleted.len(),
            2,
            "the duplicate jump and the jump to KUBE-OLD"
        );
        let (text, after) = save(&ns, Family::V4, backend, Table::Nat);
        assert_eq!(after.chain("DOCKER"), before.chain("DOCKER"), "{text}");
        assert!(after.chain("KUBE-OLD").is_none(), "{text}");
        let prerouting = &after.chain("PREROUTING").unwrap().rules;
        let targets: Vec<_> = prerouting.iter().filter_map(Rule::target).collect();
        assert_eq!(
            targets,
            ["DOCKER", "KUBE-SERVICES"],
            "the first copy stays in place: {text}"
        );
        assert_eq!(after.chain("OUTPUT").unwrap().rules.len(), 1, "{text}");

        // One changed chain: only it is declared and rewritten.
        desired.chains[1].rules = vec![Rule::parse("-j MARK --set-xmark 0x8000/0x8000").unwrap()];
        let plan = ns.enter(|| ipt.sync(&desired)).unwrap().unwrap();
        assert_eq!(
            plan.rewritten,
            ["KUBE-MARK-MASQ".parse::<ChainName>().unwrap()]
        );
        assert_eq!(
            plan.text(),
            "*nat\n:KUBE-MARK-MASQ - [0:0]\n-A KUBE-MARK-MASQ -j MARK --set-xmark 0x8000/0x8000\nCOMMIT\n"
        );
        let (_, changed) = save(&ns, Family::V4, backend, Table::Nat);
        assert_eq!(
            changed.chain("KUBE-MARK-MASQ").unwrap().rules,
            desired.chains[1].rules
        );
        assert_eq!(changed.chain("DOCKER"), before.chain("DOCKER"));

        // Drift: a rule added by hand to our chain is repaired at the next sync.
        ns.run(&[
            &format!("iptables-{}", backend_name(backend)),
            "-t",
            "nat",
            "-A",
            "KUBE-SERVICES",
            "-j",
            "ACCEPT",
        ]);
        let plan = ns.enter(|| ipt.sync(&desired)).unwrap().unwrap();
        assert_eq!(
            plan.rewritten,
            ["KUBE-SERVICES".parse::<ChainName>().unwrap()]
        );
        // From the applied state: a change is planned without reading the
        // table, and a hand edit is only seen by the next full sync.
        desired.chains[1].rules = vec![Rule::parse("-j MARK --set-xmark 0x4000/0x4000").unwrap()];
        let plan = ns
            .enter(|| ipt.sync_from_applied(&desired))
            .unwrap()
            .unwrap();
        assert_eq!(
            plan.rewritten,
            ["KUBE-MARK-MASQ".parse::<ChainName>().unwrap()]
        );
        assert_eq!(ns.enter(|| ipt.sync_from_applied(&desired)).unwrap(), None);
        let (_, now) = save(&ns, Family::V4, backend, Table::Nat);
        assert_eq!(
            now.chain("KUBE-MARK-MASQ").unwrap().rules,
            desired.chains[1].rules
        );
        ns.run(&[
            &format!("iptables-{}", backend_name(backend)),
            "-t",
            "nat",
            "-F",
            "KUBE-MARK-MASQ",
        ]);
        assert_eq!(ns.enter(|| ipt.sync_from_applied(&desired)).unwrap(), None);
        let plan = ns.enter(|| ipt.sync(&desired)).unwrap().unwrap();
        assert_eq!(
            plan.rewritten,
            ["KUBE-MARK-MASQ".parse::<ChainName>().unwrap()]
        );

        let owned = ns
            .enter(|| ipt.owned_chains(Table::Nat, &kube_ownership()))
            .unwrap();
        assert_eq!(owned.len(), 2, "{owned:?}");
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_restore_errors_name_the_rule() {
    for backend in BACKENDS {
        let ns = Netns::new("ipterr");
        let ipt = Iptables::new(Family::V4, backend);
        let mut desired = DesiredTable::new(Table::Filter, kube_ownership());
        let bad = Rule::parse("-m nosuchmatch --foo -j ACCEPT").unwrap();
        desired.chains.push(Chain {
            name: "KUBE-FORWARD".parse().unwrap(),
            rules: vec![Rule::parse("-j ACCEPT").unwrap(), bad.clone()],
        });
        let current = ns.enter(|| ipt.read(Table::Filter)).unwrap();
        let plan = ipt.plan(&current, &desired).unwrap().unwrap();
        match ns.enter(|| ipt.restore(&plan)) {
            Err(Error::Restore { line, origin, .. }) => {
                assert_eq!(line, Some(4), "{backend:?}");
                assert!(
                    matches!(origin.as_deref(), Some(LineOrigin::Append { index: 1, rule, .. }) if *rule == bad),
                    "{origin:?}"
                );
            }
            other => panic!("{backend:?}: {other:?}"),
        }
        let after = ns.enter(|| ipt.read(Table::Filter)).unwrap();
        assert!(
            after.chain("KUBE-FORWARD").is_none(),
            "a failed restore changes nothing"
        );
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_detects_the_hosts_backend() {
    let version = testkit::run(&["iptables", "--version"]);
    let detected = Backend::detect(Family::V4).unwrap();
    assert_eq!(Some(detected), Backend::from_version(&version));
    let ns = Netns::new("iptdet");
    let text = ns.run(&["iptables-save", "-t", "filter"]);
    assert_eq!(Backend::from_save_header(&text), Some(detected), "{text}");
}
