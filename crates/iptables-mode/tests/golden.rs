//! Golden tests: each directory under `testdata/` holds the objects of a small cluster
//! (Services, EndpointSlices and this node's Node) and the expected tables per family
//! (`expected.[VARIANT.]v4.txt`, `…v6.txt`), printed by [`iptables_mode::render`], filter
//! then nat. `UPDATE_GOLDEN=1 cargo test -p iptables-mode --test golden` rewrites them for
//! the cases generated here; review the diff. `kube-proxy-overall` is kube-proxy's own
//! expected output and is never rewritten.

mod common;

use common::Case;
use iptables::{Learned, TableState};
use iptables_mode::{Tables, render};
use model::IpFamily;

/// Both tables, filter then nat, as one text.
fn text(tables: &Tables) -> String {
    tables.iter().map(render).collect()
}

/// The writer accepts the tables: every jump target is a wanted chain, nothing is listed
/// twice.
fn assert_consistent(tables: &Tables) {
    for table in tables.iter() {
        let plan = iptables::plan(&TableState::empty(table.table), table, &Learned::default());
        assert!(plan.is_ok(), "{}: {plan:?}", table.table);
    }
}

/// The lines only one side has, marked `-` (expected) and `+` (actual).
fn diff_lines(expected: &str, actual: &str) -> Vec<String> {
    let exp: Vec<&str> = expected.lines().collect();
    let act: Vec<&str> = actual.lines().collect();
    let mut out: Vec<String> = exp
        .iter()
        .filter(|l| !act.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        act.iter()
            .filter(|l| !exp.contains(l))
            .map(|l| format!("+ {l}")),
    );
    if out.is_empty() {
        out.push("(same lines, different order)".to_owned());
    }
    out
}

fn check(case: &Case, family: IpFamily, actual: &str) {
    let suffix = match family {
        IpFamily::V4 => "v4",
        IpFamily::V6 => "v6",
    };
    let path = case
        .path()
        .join(format!("expected.{}{suffix}.txt", case.variant));
    let generated_here = case.dir != "kube-proxy-overall";
    if generated_here && std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = diff_lines(&expected, actual);
        panic!("{} differs:\n{}", path.display(), diff.join("\n"));
    }
}

/// Generates the case's tables and compares them with its expected files.
fn run_case(case: &Case) -> Vec<IpFamily> {
    let generator = case.generator();
    assert_eq!(generator.rejected().count(), 0);
    let families: Vec<IpFamily> = generator.families().collect();
    for family in &families {
        let tables = generator.tables(*family).expect("tables");
        assert_consistent(&tables);
        check(case, *family, &text(&tables));
    }
    families
}

#[test]
fn kube_proxy_overall() {
    assert_eq!(run_case(&common::kube_proxy_overall()), [IpFamily::V4]);
}

#[test]
fn cluster_defaults() {
    assert_eq!(
        run_case(&common::cluster_defaults()),
        [IpFamily::V4, IpFamily::V6]
    );
}

#[test]
fn cluster_masquerade_all() {
    run_case(&common::cluster_masquerade_all());
}
