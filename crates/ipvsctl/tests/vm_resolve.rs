//! Names without `-n`, in the test VM: with `/etc/hosts` and `/etc/services`
//! entries for some of the table's addresses and ports, `ipvsctl-rs` prints
//! `-L`, `-L --stats`, `-L --rate`, `-S` and `-L -c` byte for byte as the
//! real `ipvsadm` does in the same VM (host names, service names, the
//! numbers where there is no name, ipvsadm's cuts of long names).

use std::time::Duration;

use testkit::{ThreeHosts, http_get, modprobe, serve_http};

mod common;
use common::ours_ok;

const VIP: &str = "10.96.0.10";
/// A service whose host name is longer than every column ipvsadm has.
const LONG_VIP: &str = "10.96.0.11";
const LONG_NAME: &str = "a-virtual-server-name-long-enough-to-be-cut-everywhere.example.org";
/// An IPv6 service with a name, and a real server without one.
const VIP6: &str = "fd00:96::10";

/// Host names for the VM's resolver (the VM is the test's own: nothing else
/// reads these files).
fn write_name_files() {
    let hosts = format!(
        "127.0.0.1 localhost\n{VIP} web.example web\n{} backend-0.pods.cluster.example\n\
         {} client.example\n{LONG_VIP} {LONG_NAME}\n{VIP6} v6.example\n",
        ThreeHosts::BACKEND,
        ThreeHosts::CLIENT,
    );
    std::fs::write("/etc/hosts", hosts).expect("write /etc/hosts");
    std::fs::write("/etc/nsswitch.conf", "hosts: files\nservices: files\n")
        .expect("write /etc/nsswitch.conf");
    let mut services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    services.push_str("kipx-admin\t9443/tcp\t\t# ipvsctl-rs test\n");
    std::fs::write("/etc/services", services).expect("write /etc/services");
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvsctl_names_like_ipvsadm_without_n() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    write_name_files();
    let hosts = ThreeHosts::new();
    let node = &hosts.node;
    node.add_dummy("kube-ipvs0", &format!("{VIP}/32"));
    serve_http(&hosts.backend, 8080, "hello from the backend");
    let backend = ThreeHosts::BACKEND;
    node.sh(&format!(
        "ipvsadm -A -t {VIP}:80 -s rr
         ipvsadm -a -t {VIP}:80 -r {backend}:8080 -m
         ipvsadm -a -t {VIP}:80 -r 10.244.1.77:9443 -m -w 0
         ipvsadm -A -u {VIP}:53 -s rr
         ipvsadm -a -u {VIP}:53 -r {backend}:53 -m
         ipvsadm -A -t {LONG_VIP}:443 -s rr
         ipvsadm -a -t {LONG_VIP}:443 -r {backend}:9443 -m
         ipvsadm -A -t [{VIP6}]:443 -s rr
         ipvsadm -a -t [{VIP6}]:443 -r [fd00:244::9]:8443 -m
         ipvsadm -A -f 7 -s rr
         ipvsadm -a -f 7 -r {backend}:80 -m"
    ));
    for _ in 0..2 {
        assert!(http_get(&hosts.client, VIP, 80).is_some_and(|r| r.contains("hello")));
    }
    // The kernel folds its per-CPU counters into what it reports every 2 s:
    // wait until both tools see the same totals.
    std::thread::sleep(Duration::from_secs(3));

    for args in ["-L", "-L --stats", "-L --rate", "-S", "-L --stats --exact"] {
        let argv: Vec<&str> = std::iter::once("ipvsadm").chain(args.split(' ')).collect();
        // The rate estimator ticks every 2 s: a tick between the two calls
        // changes the numbers, so a pair may be taken again.
        let (text, theirs) = (0..3)
            .map(|_| (ours_ok(node, args), node.run(&argv)))
            .find(|(ours, theirs)| ours == theirs)
            .unwrap_or_else(|| (ours_ok(node, args), node.run(&argv)));
        println!("# ipvsctl-rs {args}\n{text}");
        assert_eq!(text, theirs, "ipvsctl-rs {args}");
    }
    // Not vacuous: names, fallbacks and cuts are there.
    let list = ours_ok(node, "-L");
    for needle in [
        "TCP  web.example:http rr",
        "  -> backend-0.pods.cluster.examp Masq",
        "  -> 10.244.1.77:kipx-admin ",
        "UDP  web.example:domain rr",
        "TCP  a-virtual-server-name-long-e rr",
        "TCP  [v6.example]:https rr",
        "  -> [fd00:244::9]:8443 ",
    ] {
        assert!(list.contains(needle), "{needle:?} not in\n{list}");
    }
    let save = ours_ok(node, "-S");
    assert!(
        save.contains("-a -f 7 -r backend-0.pods.cluster.example:80 -m -w 1"),
        "{save}"
    );
    assert!(
        save.contains(&format!(
            "-A -t {} -s rr",
            &format!("{LONG_NAME}:https")[..59]
        )),
        "{save}"
    );
    // -n still prints numbers.
    assert_eq!(ours_ok(node, "-Ln"), node.run(&["ipvsadm", "-Ln"]));
    assert_eq!(ours_ok(node, "-Sn"), node.run(&["ipvsadm", "-Sn"]));
    assert_eq!(ours_ok(node, "list"), node.run(&["ipvsadm", "-Ln"]));

    // Connection entries count down their expiry between the two calls.
    let without_expiry = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| match l.get(..4) {
                Some("TCP " | "UDP ") => format!("{}{}", &l[..4], &l[11..]),
                _ => l.to_owned(),
            })
            .collect()
    };
    let conns = ours_ok(node, "-L -c");
    println!("# ipvsctl-rs -L -c\n{conns}");
    assert_eq!(
        without_expiry(&conns),
        without_expiry(&node.run(&["ipvsadm", "-L", "-c"]))
    );
    assert!(
        conns.contains("client.example:") && conns.contains("web.example:http"),
        "{conns}"
    );
}
