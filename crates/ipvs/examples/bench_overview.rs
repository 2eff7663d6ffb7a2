//! Benchmark: parsing the overview text (`/proc/net/ip_vs`) of a table of N virtual
//! servers × 10 real servers (default 10,000), generated in the kernel's format, with
//! [`ipvs::read_overview`]. Prints the time per pass; asserts nothing. What the kernel
//! spends producing the text is measured in the VM (`vmbench_daemon`: `cat`).
//!
//! Run: `cargo run --release -p ipvs --example bench_overview [SERVICES]`

use std::fmt::Write as _;
use std::time::Instant;

fn main() {
    let services: u32 = std::env::args()
        .nth(1)
        .map_or(10_000, |a| a.parse().expect("a number"));
    let mut text = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n",
    );
    for s in 0..services {
        let vip = 0x0A60_0000 + s;
        writeln!(text, "TCP  {vip:08X}:0050 rr  ").expect("write");
        for e in 0..10 {
            let rip = 0x0A80_0000 + s * 10 + e;
            writeln!(
                text,
                "  -> {rip:08X}:1F90      Masq    1      0          0         "
            )
            .expect("write");
        }
    }
    let passes = 5;
    let started = Instant::now();
    for _ in 0..passes {
        let mut real_servers = 0;
        ipvs::read_overview(text.as_bytes(), |s| real_servers += s.destinations.len())
            .expect("parses");
        assert_eq!(real_servers, services as usize * 10);
    }
    let each = started.elapsed() / passes;
    println!(
        "overview of {services} virtual servers x 10 ({:.1} MiB of text): {each:.1?} per parse",
        text.len() as f64 / 1_048_576.0
    );
}
