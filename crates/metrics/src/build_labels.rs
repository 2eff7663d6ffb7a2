//! `kubernetes_build_info`: component-base's constant `1` labelled with the build
//! (`staging/src/k8s.io/component-base/metrics/prometheus/version/metrics.go`, snake_case
//! label names since Kubernetes v1.24), which kube-proxy exports; here with this daemon's
//! version and commit.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The labels, in component-base's order.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    major: String,
    minor: String,
    git_version: String,
    git_commit: String,
    git_tree_state: String,
    build_date: String,
    go_version: String,
    compiler: String,
    platform: String,
}

/// This build's labels: our version as `git_version` (`v` and the crate version), the
/// commit `--version` names, `rustc` as the compiler and no Go version; the platform in
/// Go's `GOOS/GOARCH` spelling, which dashboards match on.
fn labels() -> BuildLabels {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    BuildLabels {
        major: build_info::MAJOR.into(),
        minor: build_info::MINOR.into(),
        git_version: format!("v{}", build_info::VERSION),
        git_commit: build_info::COMMIT.into(),
        git_tree_state: String::new(),
        build_date: String::new(),
        go_version: String::new(),
        compiler: "rustc".into(),
        platform: format!("{}/{arch}", std::env::consts::OS),
    }
}

/// The metric, set to 1 for this build.
pub(crate) fn build_info() -> Family<BuildLabels, Gauge> {
    let family = Family::<BuildLabels, Gauge>::default();
    family.get_or_create(&labels()).set(1);
    family
}
