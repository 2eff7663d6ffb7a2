//! Running `ipvsctl-rs` inside a test's network namespace, for the VM tests.

use std::process::Output;

use testkit::Netns;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_ipvsctl-rs");

/// Runs ipvsctl-rs with arguments split on blanks.
pub(crate) fn ours(ns: &Netns, line: &str) -> Output {
    let argv: Vec<&str> = std::iter::once(BIN)
        .chain(line.split_whitespace())
        .collect();
    ns.try_run(&argv)
}

/// Runs ipvsctl-rs, which must succeed, and returns its output.
pub(crate) fn ours_ok(ns: &Netns, line: &str) -> String {
    let out = ours(ns, line);
    assert!(
        out.status.success(),
        "ipvsctl-rs {line} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
