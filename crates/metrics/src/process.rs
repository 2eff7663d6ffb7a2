//! The `process_*` metrics the Go Prometheus client exports on Linux (client_golang's
//! `processCollector`), which kube-proxy's `/metrics` carries: the same names, types and
//! sources in `/proc`, read at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc` reports times in `USER_HZ`, 100 on every Linux architecture (Go's procfs uses
/// the same constant).
const USER_HZ: f64 = 100.0;

/// What `/proc` says of this process, in the Go client's units.
#[derive(Debug, Clone, PartialEq)]
struct Process {
    cpu_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
    start_time_seconds: f64,
    open_fds: f64,
    max_fds: f64,
    virtual_max_bytes: f64,
}

/// Reads this process's figures; `None` when `/proc` is not there or not readable.
fn read() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    parse(&stat, &status, &boot, &limits, open_fds)
}

/// The figures from the texts of `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and
/// `/proc/self/limits`, and the number of entries of `/proc/self/fd`.
fn parse(stat: &str, status: &str, boot: &str, limits: &str, open_fds: usize) -> Option<Process> {
    // The fields after the command name, which is in parentheses and may hold anything.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // proc(5) numbers the fields from 1: state is (3), so field (n) is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let (utime, stime, starttime, vsize) = (field(14)?, field(15)?, field(22)?, field(23)?);
    let btime: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let resident_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Process {
        cpu_seconds: (utime + stime) / USER_HZ,
        virtual_bytes: vsize,
        resident_bytes: resident_kib * 1024.0,
        start_time_seconds: btime + starttime / USER_HZ,
        open_fds: open_fds as f64,
        max_fds: soft_limit(limits, "Max open files")?,
        virtual_max_bytes: soft_limit(limits, "Max address space")?,
    })
}

/// The soft limit of a `/proc/self/limits` row; `unlimited` reads as the largest 64-bit
/// value, as Go's procfs reads it.
fn soft_limit(limits: &str, row: &str) -> Option<f64> {
    let value = limits
        .lines()
        .find_map(|l| l.strip_prefix(row))?
        .split_whitespace()
        .next()?;
    if value == "unlimited" {
        Some(u64::MAX as f64)
    } else {
        value.parse().ok()
    }
}

/// Encodes the figures at each scrape; nothing when `/proc` cannot be read (as the Go
/// client without `ReportErrors`).
#[derive(Debug)]
pub(crate) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(p) = read() else { return Ok(()) };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_bytes,
            ),
            (
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                p.virtual_max_bytes,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Texts in the kernel's formats (proc(5)); the command name holds a space and a ')'.
    const STAT: &str = "4242 (kube ipvs) proxy) S 1 4242 4242 0 -1 4194560 3000 0 0 0 \
        250 75 0 0 20 0 9 0 123450 1073741824 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    const STATUS: &str =
        "Name:\tkube-ipvs-proxy\nVmPeak:\t 1100000 kB\nVmRSS:\t   8192 kB\nVmHWM:\t   9000 kB\n";
    const BOOT: &str = "cpu  1 2 3 4\nintr 5\nbtime 1796400000\nprocesses 77\n";
    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max open files            1024                 524288               files     \n\
        Max address space         unlimited            unlimited            bytes     \n";

    #[test]
    fn reads_procs_formats_in_the_go_clients_units() {
        let p = parse(STAT, STATUS, BOOT, LIMITS, 12).expect("parsed");
        assert_eq!(
            p,
            Process {
                cpu_seconds: 3.25,
                virtual_bytes: 1_073_741_824.0,
                resident_bytes: 8_388_608.0,
                start_time_seconds: 1_796_401_234.5,
                open_fds: 12.0,
                max_fds: 1024.0,
                virtual_max_bytes: 18_446_744_073_709_551_615.0,
            }
        );
    }

    #[test]
    fn this_process_is_readable() {
        let p = read().expect("/proc/self");
        assert!(p.open_fds >= 3.0 && p.max_fds >= p.open_fds, "{p:?}");
        assert!(
            p.resident_bytes > 0.0 && p.virtual_bytes >= p.resident_bytes,
            "{p:?}"
        );
    }
}
