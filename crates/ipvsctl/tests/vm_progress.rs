//! Progress on a terminal, in the test VM: a restore of 10,000 changes and
//! a save of its 5,000 services, with standard error on a pseudo-terminal,
//! show `restore: DONE/TOTAL (RATE/s)` and `listing: DONE/TOTAL (RATE/s)`
//! there, and erase the line at the end; with standard error on a pipe they
//! write nothing to it. The output itself is the same either way.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use testkit::{Netns, modprobe, tool};

const BIN: &str = env!("CARGO_BIN_EXE_ipvsctl-rs");
/// Services in the table, each with one real server: more changes (10,000)
/// and more services than the CLI's progress threshold (5,000).
const SERVICES: usize = 5_000;

/// The table: cluster IPs spread over the kernel's service hash.
fn rules() -> String {
    (0..SERVICES)
        .map(|i| {
            let vip = format!("10.96.{}.{}:80", i / 250, i % 250 + 1);
            format!(
                "-A -t {vip} -s rr\n-a -t {vip} -r 10.244.{}.{}:8080 -m -w 1\n",
                i / 250,
                i % 250 + 1
            )
        })
        .collect()
}

/// A pseudo-terminal: its controlling side and the terminal.
fn pty() -> (File, File) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("posix_openpt");
    grantpt(&controller).expect("grantpt");
    unlockpt(&controller).expect("unlockpt");
    let name = ptsname(&controller, Vec::new()).expect("ptsname");
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().expect("a UTF-8 terminal name"))
        .expect("open the terminal");
    (File::from(controller), terminal)
}

/// What one run wrote: standard output, and standard error (what the
/// terminal showed when `terminal`).
struct Run {
    stdout: String,
    stderr: String,
}

/// Runs `ipvsctl-rs args` in `ns` with `input` on standard input and
/// standard error on a terminal (`terminal`) or a pipe; it must succeed.
fn run(ns: &Netns, args: &[&str], input: &Path, terminal: bool) -> Run {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns.name(), BIN])
        .args(args)
        .stdin(File::open(input).expect("open the input"))
        .stdout(Stdio::piped());
    let mut controller = None;
    if terminal {
        let (c, t) = pty();
        command.stderr(Stdio::from(t));
        controller = Some(c);
    } else {
        command.stderr(Stdio::piped());
    }
    let mut child = command.spawn().expect("start ipvsctl-rs");
    // The terminal's other copy went with the command: once the child
    // exits, reading the controller ends (EIO).
    drop(command);
    let stderr_reader = std::thread::spawn({
        let stderr = child.stderr.take();
        move || {
            let mut bytes = Vec::new();
            match (controller, stderr) {
                (Some(mut c), _) => {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = c.read(&mut buf) {
                        bytes.extend_from_slice(&buf[..n]);
                    }
                }
                (None, Some(mut e)) => {
                    e.read_to_end(&mut bytes).expect("read stderr");
                }
                (None, None) => unreachable!("stderr is a terminal or a pipe"),
            }
            String::from_utf8(bytes).expect("UTF-8 on stderr")
        }
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let status = child.wait().expect("wait for ipvsctl-rs");
    let stderr = stderr_reader.join().expect("stderr reader");
    assert!(status.success(), "ipvsctl-rs {args:?}: {status}: {stderr}");
    Run { stdout, stderr }
}

/// The progress lines drawn for `what`: (done, total, rate) of each.
fn progress_lines(shown: &str, what: &str) -> Vec<(usize, usize, f64)> {
    shown
        .split("\r\x1b[K")
        .filter(|s| !s.is_empty())
        .map(|line| {
            let rest = line
                .strip_prefix(&format!("{what}: "))
                .unwrap_or_else(|| panic!("not a {what} progress line: {line:?} in {shown:?}"));
            let (counts, rate) = rest
                .strip_suffix("/s)")
                .and_then(|r| r.split_once(" ("))
                .unwrap_or_else(|| panic!("no rate in {line:?}"));
            let (done, total) = counts.split_once('/').expect("DONE/TOTAL");
            (
                done.parse().expect("done"),
                total.parse().expect("total"),
                rate.parse().expect("rate"),
            )
        })
        .collect()
}

/// Checks that the terminal showed progress of `what` over `total` entries
/// and was cleared at the end.
fn assert_progress(shown: &str, what: &str, total: usize) {
    let lines = progress_lines(shown, what);
    assert!(!lines.is_empty(), "no {what} progress in {shown:?}");
    for (done, t, rate) in &lines {
        assert_eq!(*t, total, "{shown:?}");
        assert!((1..=total).contains(done), "{shown:?}");
        assert!(*rate > 0.0, "{shown:?}");
    }
    assert!(
        lines.windows(2).all(|w| w[0].0 <= w[1].0),
        "done goes forward: {shown:?}"
    );
    assert!(shown.ends_with("\r\x1b[K"), "erased at the end: {shown:?}");
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvsctl_progress_on_a_terminal_only() {
    modprobe(&["ip_vs", "ip_vs_rr"]);
    let input = std::env::temp_dir().join("vm-progress-rules");
    std::fs::write(&input, rules()).expect("write the rules");
    let empty = Path::new("/dev/null");
    let ipvsadm = tool("ipvsadm").display().to_string();

    let on_terminal = Netns::new("progress-tty");
    let restored = run(&on_terminal, &["-R"], &input, true);
    assert_progress(&restored.stderr, "restore", 2 * SERVICES);
    let saved = run(&on_terminal, &["-Sn"], empty, true);
    assert_progress(&saved.stderr, "listing", SERVICES);
    assert_eq!(saved.stdout, on_terminal.run(&[&ipvsadm, "-Sn"]));
    assert_eq!(saved.stdout.lines().count(), 2 * SERVICES);

    let on_pipe = Netns::new("progress-pipe");
    let restored = run(&on_pipe, &["-R"], &input, false);
    assert_eq!(restored.stderr, "", "restore, stderr not a terminal");
    let saved_on_pipe = run(&on_pipe, &["-Sn"], empty, false);
    assert_eq!(saved_on_pipe.stderr, "", "save, stderr not a terminal");
    assert_eq!(saved_on_pipe.stdout, saved.stdout);
}
