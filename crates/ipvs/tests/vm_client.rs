//! The client against a real kernel, cross-checked with the real ipvsadm.
//! Each test works in a fresh network namespace (IPVS tables are per
//! namespace). Run with `tests/vm/run vm_ipvs`.

mod common;

use std::collections::{BTreeSet, HashSet};

use common::{expected_save, fresh, ip, ipvsadm_save, save_destination, save_service};
use ipvs::{
    AddressFamily, Change, Destination, ErrorKind, ForwardMethod, Persistence, Protocol, Scheduler,
    Service, ServiceFlags, ServiceKey, Timeouts, TunnelFlags, TunnelType,
};

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::inet(Protocol::Tcp, ip(addr), port)
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_info_timeouts_and_flush() {
    let (_ns, mut c) = fresh("info");
    let info = c.info().unwrap();
    assert_eq!(info.version.to_string(), "1.2.1");
    assert!(info.connection_table_size.is_power_of_two(), "{info:?}");

    let before = c.timeouts().unwrap();
    assert_eq!(
        before,
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }
    );
    c.set_timeouts(&Timeouts {
        udp: 60,
        ..Timeouts::default()
    })
    .unwrap();
    assert_eq!(c.timeouts().unwrap(), Timeouts { udp: 60, ..before });

    c.add_service(&Service::new(tcp("10.0.0.1", 80), Scheduler::RoundRobin))
        .unwrap();
    assert_eq!(c.services().unwrap().len(), 1);
    c.flush().unwrap();
    assert!(c.services().unwrap().is_empty());
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_created_by_the_crate_reads_back_with_ipvsadm() {
    let (ns, mut c) = fresh("create");
    let v4 = tcp("10.0.0.1", 80);
    let v6 = ServiceKey::inet(Protocol::Udp, ip("2001:db8::1"), 53);
    let fwm = ServiceKey::fwmark(AddressFamily::Inet, 7).unwrap();
    let fwm6 = ServiceKey::fwmark(AddressFamily::Inet6, 7).unwrap();
    let sctp = ServiceKey::inet(Protocol::Sctp, ip("10.0.0.3"), 3868);
    let mut persistent = Service::new(tcp("10.0.0.2", 443), Scheduler::WeightedLeastConnection);
    persistent.persistence = Some(Persistence {
        timeout: 10800,
        prefix_len: 24,
    });
    let mut sip = Service::new(
        ServiceKey::inet(Protocol::Udp, ip("10.0.0.4"), 5060),
        Scheduler::RoundRobin,
    );
    sip.persistence = Some(Persistence {
        timeout: 360,
        prefix_len: 32,
    });
    sip.persistence_engine = Some("sip".into());
    sip.flags = ServiceFlags::ONE_PACKET;
    let mut sh = Service::new(
        ServiceKey::inet(Protocol::Udp, ip("10.0.0.10"), 53),
        Scheduler::SourceHashing,
    );
    sh.flags = ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT;
    let mut mh6 = Service::new(fwm6, Scheduler::Maglev);
    mh6.flags = ServiceFlags::MH_PORT;
    mh6.persistence = Some(Persistence {
        timeout: 60,
        prefix_len: 64,
    });

    let services = [
        Service::new(v4, Scheduler::RoundRobin),
        Service::new(v6, Scheduler::WeightedRoundRobin),
        Service::new(fwm, Scheduler::LeastConnection),
        Service::new(sctp, Scheduler::NeverQueue),
        persistent.clone(),
        sip,
        sh,
        mh6,
    ];
    let tunnel = |tunnel, flags| ForwardMethod::Tunnel { tunnel, flags };
    let dests = [
        (
            v4,
            Destination::new(ip("10.255.1.1"), 8080, ForwardMethod::Masquerade, 1),
        ),
        (
            v4,
            Destination::new(ip("10.255.1.2"), 80, ForwardMethod::DirectRoute, 5),
        ),
        (
            v4,
            Destination::new(
                ip("10.255.1.3"),
                80,
                tunnel(TunnelType::Ipip, TunnelFlags::empty()),
                2,
            ),
        ),
        (
            v4,
            Destination::new(
                ip("10.255.1.4"),
                80,
                tunnel(TunnelType::Gue { port: 6080 }, TunnelFlags::CSUM),
                1,
            ),
        ),
        (
            v4,
            Destination::new(
                ip("10.255.1.5"),
                80,
                tunnel(TunnelType::Gre, TunnelFlags::REMCSUM),
                0,
            ),
        ),
        // An IPv6 real server behind an IPv4 service: tunnels only.
        (
            v4,
            Destination::new(
                ip("fd00:ff::9"),
                80,
                tunnel(TunnelType::Ipip, TunnelFlags::empty()),
                1,
            ),
        ),
        (
            v6,
            Destination::new(ip("fd00:ff::10"), 53, ForwardMethod::Masquerade, 3),
        ),
        (
            fwm,
            Destination::new(ip("10.255.2.1"), 0, ForwardMethod::DirectRoute, 1),
        ),
        (
            sctp,
            Destination::new(ip("10.255.2.2"), 3868, ForwardMethod::Masquerade, 1),
        ),
        (
            persistent.key,
            Destination {
                upper_threshold: 100,
                lower_threshold: 10,
                ..Destination::new(ip("10.255.3.1"), 443, ForwardMethod::Masquerade, 1)
            },
        ),
    ];
    let mut changes: Vec<Change> = services.iter().cloned().map(Change::AddService).collect();
    changes.extend(dests.iter().map(|(k, d)| Change::AddDestination(*k, *d)));
    for (change, result) in changes.iter().zip(c.apply(&changes)) {
        result.unwrap_or_else(|e| panic!("{change}: {e}"));
    }

    let mut expected: BTreeSet<String> = services.iter().map(save_service).collect();
    expected.extend(dests.iter().map(|(k, d)| save_destination(k, d)));
    assert_eq!(ipvsadm_save(&ns), expected);

    // And the crate reads back exactly what it wrote, thresholds included.
    let listed = c.list().unwrap();
    let got: HashSet<Service> = listed.iter().map(|s| s.service.service.clone()).collect();
    assert_eq!(got, services.iter().cloned().collect());
    let got: BTreeSet<String> = listed
        .iter()
        .flat_map(|s| {
            s.destinations
                .iter()
                .map(move |d| format!("{} {:?}", s.service.service.key, d.destination))
        })
        .collect();
    let want: BTreeSet<String> = dests.iter().map(|(k, d)| format!("{k} {d:?}")).collect();
    assert_eq!(got, want);
    assert_eq!(c.service(&persistent.key).unwrap().service, persistent);
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_created_by_ipvsadm_reads_back_with_the_crate() {
    let (ns, mut c) = fresh("restore");
    let table = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.255.1.1:8080 -m -w 1
-a -t 10.0.0.1:80 -r 10.255.1.2:8080 -m -w 2
-A -t 10.0.0.2:443 -s wlc -p 10800 -M 255.255.255.0
-A -u 10.0.0.10:53 -s sh -b sh-fallback,sh-port
-A -u 10.0.0.4:5060 -s rr -p 360 --pe sip
-A -f 1 -s dh
-a -f 1 -r 10.255.2.1:0 -g -w 1
-A -t [2001:db8::1]:80 -s wrr
-a -t [2001:db8::1]:80 -r [fd00:ff::10]:80 -g -w 5
-A -f 7 -6 -s mh -b mh-port
-A -t 10.0.0.5:80 -s lblcr
-a -t 10.0.0.5:80 -r 10.255.9.9:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
";
    ns.sh(&format!("printf '%s' '{table}' | ipvsadm -R"));
    let want: BTreeSet<String> = table.lines().map(str::to_owned).collect();
    assert_eq!(expected_save(&mut c), want);
    assert_eq!(ipvsadm_save(&ns), want);

    let listed = c.list().unwrap();
    let rr = listed
        .iter()
        .find(|s| s.service.service.key == tcp("10.0.0.1", 80))
        .unwrap();
    assert_eq!(rr.destinations.len(), 2);
    let json = serde_json::to_string(&listed).unwrap();
    assert!(json.contains("\"scheduler\":\"rr\""), "{json}");

    // Part of the table, in the order asked; a missing key is left out.
    let some = c
        .list_only(&[
            tcp("10.0.0.5", 80),
            tcp("10.0.0.99", 80),
            tcp("10.0.0.1", 80),
        ])
        .unwrap();
    let by_key = |k| listed.iter().find(|s| s.service.service.key == k).unwrap();
    assert_eq!(
        some,
        [by_key(tcp("10.0.0.5", 80)).clone(), rr.clone()],
        "list_only differs from list"
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_every_scheduler() {
    let (ns, mut c) = fresh("sched");
    let available = common::load_modules();
    let (mut services, mut missing) = (Vec::new(), Vec::new());
    for (i, sched) in Scheduler::all().enumerate() {
        let svc = Service::new(tcp("10.0.1.1", 1000 + i as u16), sched.clone());
        let result = c.add_service(&svc);
        if available.contains(&sched) {
            result.unwrap_or_else(|e| panic!("{e}"));
            services.push(svc);
        } else {
            // Not in this kernel (no twos in Debian 12's 6.1): the kernel's ENOENT, typed.
            assert_eq!(
                result.unwrap_err().kind(),
                Some(ErrorKind::SchedulerNotFound),
                "{sched}"
            );
            missing.push(sched);
        }
    }
    eprintln!("schedulers without a module in this kernel: {missing:?}");
    assert!(services.len() >= 13, "{available:?}");
    let got: HashSet<Service> = c
        .services()
        .unwrap()
        .into_iter()
        .map(|e| e.service)
        .collect();
    assert_eq!(got, services.iter().cloned().collect());
    assert_eq!(
        ipvsadm_save(&ns),
        services.iter().map(save_service).collect()
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_edit_in_place_and_delete() {
    let (ns, mut c) = fresh("edit");
    let key = tcp("10.0.0.1", 80);
    let mut svc = Service::new(key, Scheduler::RoundRobin);
    c.add_service(&svc).unwrap();
    let mut rs = Destination::new(ip("10.255.1.1"), 80, ForwardMethod::Masquerade, 1);
    c.add_destination(&key, &rs).unwrap();

    svc.scheduler = Scheduler::SourceHashing;
    svc.flags = ServiceFlags::SH_PORT;
    svc.persistence = Some(Persistence {
        timeout: 30,
        prefix_len: 32,
    });
    c.edit_service(&svc).unwrap();
    assert_eq!(c.service(&key).unwrap().service, svc);

    rs.weight = 7;
    rs.upper_threshold = 50;
    rs.forward = ForwardMethod::DirectRoute;
    c.edit_destination(&key, &rs).unwrap();
    assert_eq!(c.destinations(&key).unwrap()[0].destination, rs);
    assert!(ipvsadm_save(&ns).contains("-a -t 10.0.0.1:80 -r 10.255.1.1:80 -g -w 7"));

    c.delete_destination(&key, rs.addr, rs.port).unwrap();
    assert!(c.destinations(&key).unwrap().is_empty());
    c.delete_service(&key).unwrap();
    assert!(ipvsadm_save(&ns).is_empty());
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_errors_are_typed() {
    let (_ns, mut c) = fresh("errors");
    let key = tcp("10.0.0.1", 80);
    let svc = Service::new(key, Scheduler::RoundRobin);
    let rs = Destination::new(ip("10.255.1.1"), 80, ForwardMethod::Masquerade, 1);
    let kind = |r: Result<(), ipvs::Error>| r.unwrap_err().kind();

    assert_eq!(
        kind(c.delete_service(&key)),
        Some(ErrorKind::ServiceNotFound)
    );
    assert_eq!(
        c.service(&key).unwrap_err().kind(),
        Some(ErrorKind::ServiceNotFound)
    );
    assert_eq!(
        kind(c.add_destination(&key, &rs)),
        Some(ErrorKind::ServiceNotFound)
    );
    let bogus = Service::new(tcp("10.0.0.9", 80), Scheduler::Other("nosuch".into()));
    assert_eq!(
        kind(c.add_service(&bogus)),
        Some(ErrorKind::SchedulerNotFound)
    );

    c.add_service(&svc).unwrap();
    let e = c.add_service(&svc).unwrap_err();
    assert_eq!(e.kind(), Some(ErrorKind::ServiceExists));
    assert!(
        e.to_string()
            .starts_with("add service TCP 10.0.0.1:80: service already exists"),
        "{e}"
    );
    c.add_destination(&key, &rs).unwrap();
    assert_eq!(
        kind(c.add_destination(&key, &rs)),
        Some(ErrorKind::DestinationExists)
    );
    let other = Destination::new(ip("10.255.1.2"), 80, ForwardMethod::Masquerade, 1);
    assert_eq!(
        kind(c.edit_destination(&key, &other)),
        Some(ErrorKind::DestinationNotFound)
    );
    assert_eq!(
        kind(c.delete_destination(&key, other.addr, 80)),
        Some(ErrorKind::DestinationNotFound)
    );
    let bad_thresholds = Destination {
        upper_threshold: 1,
        lower_threshold: 5,
        ..other
    };
    assert_eq!(
        kind(c.add_destination(&key, &bad_thresholds)),
        Some(ErrorKind::OutOfRange)
    );
    let mixed = Destination::new(ip("fd00:ff::2"), 80, ForwardMethod::Masquerade, 1);
    assert_eq!(
        kind(c.add_destination(&key, &mixed)),
        Some(ErrorKind::InvalidArgument)
    );
    let gue0 = Destination::new(
        ip("10.255.1.3"),
        80,
        ForwardMethod::Tunnel {
            tunnel: TunnelType::Gue { port: 0 },
            flags: TunnelFlags::empty(),
        },
        1,
    );
    assert_eq!(
        kind(c.add_destination(&key, &gue0)),
        Some(ErrorKind::InvalidArgument)
    );
    let long = Service::new(key, Scheduler::Other("x".repeat(16)));
    assert!(matches!(
        c.edit_service(&long),
        Err(ipvs::Error::InvalidInput { .. })
    ));

    // A batch: the bad change fails alone, the others apply.
    let k2 = tcp("10.0.0.2", 80);
    let changes = vec![
        Change::AddService(Service::new(k2, Scheduler::RoundRobin)),
        Change::AddService(svc.clone()),
        Change::AddDestination(k2, rs),
    ];
    let results = c.apply(&changes);
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        Some(ErrorKind::ServiceExists)
    );
    assert_eq!(c.destinations(&k2).unwrap().len(), 1);
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_stats_and_zero() {
    let (ns, mut c) = fresh("stats");
    let key = tcp("10.0.0.1", 80);
    c.add_service(&Service::new(key, Scheduler::RoundRobin))
        .unwrap();
    c.add_destination(
        &key,
        &Destination::new(ip("10.255.1.1"), 80, ForwardMethod::Masquerade, 1),
    )
    .unwrap();
    // A SYN to the VIP from inside the namespace creates a connection entry
    // (the real server does not exist: the SYN is scheduled, then lost).
    ns.run(&["ip", "addr", "add", "10.0.0.1/32", "dev", "d0"]);
    let busybox = testkit::busybox().display().to_string();
    let mut svc = c.service(&key).unwrap();
    for _ in 0..5 {
        let out = ns.try_run(&[&busybox, "nc", "-w", "1", "10.0.0.1", "80"]);
        svc = c.service(&key).unwrap();
        if svc.stats.connections > 0 {
            break;
        }
        eprintln!("no connection counted yet; nc said {out:?}");
    }
    assert!(svc.stats.connections >= 1, "{:?}", svc.stats);
    // The same counter as ipvsadm shows it: "TCP  10.0.0.1:80  Conns InPkts ...".
    let listing = ns.run(&["ipvsadm", "-Ln", "--stats", "--exact"]);
    let conns: Vec<&str> = listing
        .lines()
        .find(|l| l.starts_with("TCP"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        conns.get(2),
        Some(&svc.stats.connections.to_string().as_str()),
        "{listing}"
    );
    let dest = &c.destinations(&key).unwrap()[0];
    assert!(
        dest.stats.connections >= 1 && dest.stats.packets_in >= 1,
        "{dest:?}"
    );
    c.zero(Some(&key)).unwrap();
    assert_eq!(c.service(&key).unwrap().stats.connections, 0);
    c.zero(None).unwrap();
}
