//! Table tests: one directory per Service shape under `testdata/shapes/`, each with its input
//! objects (`*.yaml`, plus the shared `testdata/node.yaml`) and the whole expected dry-run text
//! (`expected.txt`) and warnings (`warnings.txt`). `UPDATE_GOLDEN=1 cargo test` rewrites the
//! expected files; review the diff before committing it.

use std::path::{Path, PathBuf};

use desired::{Config, DesiredState, NodeInfo};
use model::source::dir;
use model::{Model, ProxyFilter};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Loads the shared node and a shape's objects into a synced model.
fn load(shape: &Path) -> (Model, Vec<String>) {
    let mut snapshot = dir::Snapshot::default();
    let node = testdata().join("node.yaml");
    let text = std::fs::read_to_string(&node).expect("node.yaml");
    dir::parse(&node, &text, &mut snapshot).expect("node parses");
    let shape_objects = dir::read(shape).expect("shape parses");
    snapshot.objects.extend(shape_objects.objects);
    snapshot.warnings.extend(shape_objects.warnings);
    let mut warnings: Vec<String> = snapshot.warnings.iter().map(ToString::to_string).collect();
    let mut model = Model::new(ProxyFilter::default(), None);
    for event in snapshot.into_events() {
        warnings.extend(model.apply(event).iter().map(ToString::to_string));
    }
    assert!(model.is_synced());
    (model, warnings)
}

fn state(model: &Model) -> DesiredState {
    let node = model.node().expect("node.yaml has the node");
    DesiredState::new(
        Config::default(),
        NodeInfo::from_node(&node.name, Some(node), &[]),
        model,
    )
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, actual).expect("write golden");
        }
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{} differs:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
}

#[test]
fn every_shape_matches_its_expected_dry_run() {
    let mut shapes: Vec<PathBuf> = std::fs::read_dir(testdata().join("shapes"))
        .expect("shapes dir")
        .map(|e| e.expect("entry").path())
        .collect();
    shapes.sort();
    assert!(shapes.len() >= 15, "expected a table of shapes");
    let mut failures = Vec::new();
    for shape in &shapes {
        let (model, warnings) = load(shape);
        let text = desired::render::text(&state(&model)).expect("text");
        check(&shape.join("expected.txt"), &text, &mut failures);
        let warnings: String = warnings.iter().map(|w| format!("{w}\n")).collect();
        check(&shape.join("warnings.txt"), &warnings, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_objects_do_not_disturb_the_others() {
    let (model, warnings) = load(&testdata().join("shapes/invalid-objects"));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("default/broken") && warnings[0].contains("spec.ports[0].port"));
    let state = state(&model);
    let vips: Vec<String> = state
        .virtual_servers()
        .map(|vs| vs.key.addr.to_string())
        .collect();
    assert_eq!(
        vips,
        vec!["10.96.99.100"],
        "only the valid Service is programmed"
    );
}
