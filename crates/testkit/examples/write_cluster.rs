//! Writes a synthetic cluster (`testkit::cluster::Synthetic`) as a directory
//! that `kube-ipvs-proxy --from-dir` and `ipvsctl-rs --names` read, to run the
//! daemon by hand at scale (for example a dry run, to see its memory). A path
//! ending in `.json` gets one JSON List in kubectl's shape and indentation
//! (`kubectl get svc,endpointslices -A -o json`) instead of a directory.
//!
//! Run: `cargo run -p testkit --example write_cluster DIR|FILE.json [SERVICES] [ENDPOINTS_PER_SERVICE]`

use std::path::PathBuf;

use testkit::cluster::Synthetic;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: write_cluster DIR|FILE.json [SERVICES] [ENDPOINTS_PER_SERVICE]");
        std::process::exit(2);
    };
    let mut number = |default: u32| {
        args.next().map_or(default, |a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("write_cluster: {a:?} is not a number");
                std::process::exit(2)
            })
        })
    };
    let cluster = Synthetic {
        services: number(10_000),
        endpoints_per_service: number(10),
        node_port_every: None,
    };
    if dir.extension().is_some_and(|e| e == "json") {
        cluster.write_list(&dir, "    ");
    } else {
        cluster.write_dir(&dir);
    }
    println!(
        "wrote {} Services x {} endpoints to {}",
        cluster.services,
        cluster.endpoints_per_service,
        dir.display()
    );
}
