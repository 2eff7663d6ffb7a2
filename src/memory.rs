//! What the daemon asks of glibc's allocator, so that its resident memory follows what it
//! holds. At 10,000 Services it holds about 40 MiB of small, long-lived objects (model,
//! desired state, last table), and every sync allocates and frees as much again on several
//! threads (the runtime's workers, the blocking pool, the netfilter strand). By default glibc
//! gives each thread an arena of its own and keeps what is freed inside them resident: the
//! benchmark's VmRSS was twice the live heap.
//!
//! Transparent huge pages are off for the daemon ([`no_huge_pages`]): with them `always`
//! (Debian's kernel), the heap's first touch takes whole 2 MiB pages, and khugepaged folds
//! the pages a trim gave back into huge pages again between syncs, so the resident set
//! climbed back to its peak (the benchmark saw 52 MiB after a sync's trim, 64 MiB a second
//! later, with the daemon idle).
//!
//! The only `unsafe` in the daemon: plain libc calls with integer arguments.
#![allow(unsafe_code)]

/// One malloc arena for every thread (`M_ARENA_MAX`, as `MALLOC_ARENA_MAX=1` would): the
/// daemon's threads rarely allocate at the same time, and memory freed by one thread is
/// reused by the others instead of staying in an arena of its own. Call first in `main`,
/// before any thread starts.
pub(crate) fn one_arena() {
    // SAFETY: mallopt takes two integers and changes only the allocator's tuning; it is
    // called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// No transparent huge pages for this process (`PR_SET_THP_DISABLE`, Linux 3.15): its
/// memory is many small objects, which 2 MiB pages only inflate. Call early in `main`,
/// before any thread starts (threads inherit the setting).
pub(crate) fn no_huge_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integers and sets a flag of this process.
    let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if result != 0 {
        // Only a very old kernel refuses; nothing but memory depends on it.
        tracing::debug!(error = %std::io::Error::last_os_error(), "transparent huge pages stay on");
    }
}

/// Gives the pages that the allocator holds free back to the kernel (`malloc_trim(0)`):
/// after a sync, whose transient allocations (plans, kernel listings, restore input) are
/// freed by then.
pub(crate) fn release_free() {
    // SAFETY: malloc_trim takes an integer and only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The daemon's memory, as the kernel and the allocator see it, in MiB: logged with every
/// sync, so that what a sync leaves resident is visible without a profiler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    /// Resident now (`VmRSS`).
    pub(crate) resident: f64,
    /// The most ever resident (`VmHWM`).
    pub(crate) peak: f64,
    /// What the program holds of the allocator's heap (`mallinfo2`: `uordblks + hblkhd`).
    pub(crate) heap_in_use: f64,
    /// What the allocator holds free in its heap (`fordblks`): resident only where touched.
    pub(crate) heap_free: f64,
}

/// The memory figures now; a figure the kernel does not give reads zero.
pub(crate) fn usage() -> Usage {
    // SAFETY: mallinfo2 takes nothing and returns a plain struct of counters.
    let info = unsafe { libc::mallinfo2() };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Usage {
        resident: status_mib(&status, "VmRSS:"),
        peak: status_mib(&status, "VmHWM:"),
        heap_in_use: mib(info.uordblks + info.hblkhd),
        heap_free: mib(info.fordblks),
    }
}

fn mib(bytes: usize) -> f64 {
    (bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0
}

/// A `kB` figure of `/proc/self/status`, in MiB.
fn status_mib(status: &str, key: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .map_or(0.0, |kib| mib(kib * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_end_up_off_for_the_process() {
        no_huge_pages();
        // SAFETY: PR_GET_THP_DISABLE takes integers and only reads the flag.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }

    #[test]
    fn usage_reads_the_kernel_and_the_allocator() {
        let held = vec![1u8; 8 << 20];
        let u = usage();
        assert!(u.resident > 8.0 && u.peak >= u.resident, "{u:?}");
        assert!(u.heap_in_use >= 8.0, "{u:?}");
        drop(held);
    }
}
