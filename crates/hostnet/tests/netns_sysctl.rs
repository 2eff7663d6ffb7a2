//! Sysctls through the crate inside a network namespace on the host: `net.*`
//! keys are per namespace, so the host's own values must not move.

#![allow(clippy::unwrap_used)] // helpers of a test binary panic to report, like the tests

use hostnet::{ARP_ANNOUNCE, ARP_IGNORE, Ensured, IP_FORWARD, SysctlError, Sysctls, VS_CONNTRACK};
use testkit::Netns;

fn host_value(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{key}")).unwrap()
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_sysctls_are_set_once_inside_the_namespace() {
    let ns = Netns::new("sysctl");
    let host_before: Vec<String> = [IP_FORWARD, ARP_IGNORE, ARP_ANNOUNCE]
        .iter()
        .map(|k| host_value(k.0))
        .collect();
    let sysctls = Sysctls::default();
    for (key, value) in [(IP_FORWARD, "1"), (ARP_IGNORE, "1"), (ARP_ANNOUNCE, "2")] {
        let first = ns.enter(|| sysctls.ensure(key, value)).unwrap();
        // A fresh namespace starts from the kernel defaults (0).
        assert_eq!(first, Ensured::Changed { was: "0".into() }, "{key}");
        assert_eq!(
            ns.enter(|| sysctls.ensure(key, value)).unwrap(),
            Ensured::AlreadySet,
            "{key}"
        );
        let seen = ns.sh(&format!("cat /proc/sys/{}", key.0));
        assert_eq!(
            seen.trim(),
            value,
            "{key} as the real tools see it in the namespace"
        );
    }
    let host_after: Vec<String> = [IP_FORWARD, ARP_IGNORE, ARP_ANNOUNCE]
        .iter()
        .map(|k| host_value(k.0))
        .collect();
    assert_eq!(host_before, host_after, "the host's own sysctls moved");
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_missing_ipvs_sysctl_is_reported_with_its_module() {
    // On this project's hosts ip_vs is absent; where it is loaded the key exists.
    let ns = Netns::new("sysctlvs");
    let ipvs_loaded = std::path::Path::new("/proc/sys/net/ipv4/vs").exists();
    match ns.enter(|| Sysctls::default().read(VS_CONNTRACK)) {
        Err(e @ SysctlError::Missing { .. }) => {
            assert!(!ipvs_loaded);
            assert!(e.to_string().contains("ip_vs module"), "{e}");
        }
        Ok(value) => assert!(ipvs_loaded, "read {value} without ip_vs"),
        Err(e) => panic!("{e}"),
    }
}
