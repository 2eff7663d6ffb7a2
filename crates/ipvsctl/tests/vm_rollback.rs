//! `ipvsctl-rs -R` in the test VM when the kernel refuses a line: every
//! change already applied from the input is undone (edits back to their
//! previous values, deleted services and real servers added back, timeouts
//! set back), so `ipvsadm -Sn`, the thresholds and the timeouts are what
//! they were; line 3 and the kernel's reason are reported. With
//! `--no-rollback` the result is the real `ipvsadm -R`'s.

use std::io::Write;
use std::process::{Command, Stdio};

use testkit::{Netns, modprobe, tool};

const BIN: &str = env!("CARGO_BIN_EXE_ipvsctl-rs");

/// The table both namespaces start from.
const TABLE: &str = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 2 -x 100 -y 10
-a -t 10.0.0.1:80 -r 10.0.1.3:8080 -m -w 1
-A -u 10.0.0.5:53 -s sh -b sh-port -p 300
-a -u 10.0.0.5:53 -r 10.0.1.4:53 -m -w 3
-A -f 9 -s rr
-a -f 9 -r 10.0.1.5:0 -g -w 1
--set 900 120 300
";

/// The kernel refuses line 3, a multicast real server (`EINVAL`: nothing
/// in the table foretells it); the lines before it edit and delete, those
/// after it edit, delete and add.
const EDITS: &str = "\
-E -t 10.0.0.1:80 -s wrr -p 60
-D -u 10.0.0.5:53
-a -t 10.0.0.1:80 -r 224.0.0.1:80 -m
-e -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 5
-d -t 10.0.0.1:80 -r 10.0.1.3:8080
-A -t 10.0.0.8:80 -s rr
-a -t 10.0.0.8:80 -r 10.0.1.8:80 -m
";

/// New timeouts, a flush and a new service, then line 4 is refused.
const FLUSH: &str = "\
--set 100 20 30
-C
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 224.0.0.1:80 -m
";

/// Line 3 adds a real server to a service that line 2 deleted: foretold by
/// the table read before applying, so nothing is applied.
const FORETOLD: &str = "\
-E -t 10.0.0.1:80 -s wrr
-D -u 10.0.0.5:53
-a -u 10.0.0.5:53 -r 10.0.1.7:53 -m
";

/// Runs the real `ipvsadm -R` on `input` in `ns`, whatever it refuses.
fn ipvsadm_restore(ns: &Netns, input: &str) {
    let ipvsadm = tool("ipvsadm");
    ns.sh(&format!(
        "{} -R <<'EOF'\n{input}EOF\ntrue",
        ipvsadm.display()
    ));
}

/// What the tests compare: the rules, the thresholds and the timeouts.
fn state(ns: &Netns) -> String {
    [
        ns.run(&["ipvsadm", "-Sn"]),
        ns.run(&["ipvsadm", "-Ln", "--thresholds"]),
        ns.run(&["ipvsadm", "-L", "--timeout"]),
    ]
    .concat()
}

/// Runs `ipvsctl-rs ARGS` in `ns` with `input` on standard input: its exit
/// status and standard error.
fn restore(ns: &Netns, args: &[&str], input: &str) -> (Option<i32>, String) {
    let mut child = Command::new(tool("ip"))
        .args(["netns", "exec", ns.name(), BIN])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ipvsctl-rs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write the rules");
    let out = child.wait_with_output().expect("ipvsctl-rs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvsctl_restore_rolls_back_when_the_kernel_refuses_a_line() {
    modprobe(&["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"]);
    let ns = Netns::new("rollback");
    ipvsadm_restore(&ns, TABLE);
    let before = state(&ns);
    assert!(before.contains("10.0.1.2:8080"), "{before}");

    for (input, refused) in [
        (
            EDITS,
            "restore: line 3: add destination TCP 10.0.0.1:80 -> 224.0.0.1:80: invalid argument",
        ),
        (
            FLUSH,
            "restore: line 4: add destination TCP 10.0.0.1:80 -> 224.0.0.1:80: invalid argument",
        ),
        (
            FORETOLD,
            "restore: line 3: add destination UDP 10.0.0.5:53 -> 10.0.1.7:53: no such service",
        ),
    ] {
        let (code, err) = restore(&ns, &["-R"], input);
        println!("# ipvsctl-rs -R <<EOF\n{input}EOF\n{err}");
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(refused), "{err}");
        let outcome = if input == FORETOLD {
            "; nothing applied"
        } else {
            "the table is as before"
        };
        assert!(err.contains(outcome), "{err}");
        assert_eq!(state(&ns), before, "after\n{input}");
    }

    // A scheduler this kernel has no module for is refused before
    // anything is applied (the kernel would refuse it with ENOENT).
    let (code, err) = restore(
        &ns,
        &["-R"],
        "-D -u 10.0.0.5:53\n-A -t 10.0.0.9:80 -s nosuch\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("line 2: unknown scheduler `nosuch' (this kernel has no module ip_vs_nosuch)")
            && err.contains("nothing applied"),
        "{err}"
    );
    assert_eq!(state(&ns), before);
    let (code, err) = restore(
        &ns,
        &["-R", "--dry-run"],
        "-A -u 10.0.0.9:5060 -s mh -p --pe sip\n",
    );
    assert_eq!(code, Some(0), "{err}");

    // --no-rollback: what ipvsadm -R leaves, line 3 refused and the rest
    // applied.
    let theirs = Netns::new("rollback-ipvsadm");
    ipvsadm_restore(&theirs, TABLE);
    ipvsadm_restore(&theirs, EDITS);
    let (code, err) = restore(&ns, &["-R", "--no-rollback"], EDITS);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("line 3: "), "{err}");
    assert_ne!(state(&ns), before);
    assert_eq!(state(&ns), state(&theirs));
}
