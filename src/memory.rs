//! What the daemon asks of glibc's allocator, so that its resident memory follows what it
//! holds. At 10,000 Services it holds about 40 MiB of small, long-lived objects (model,
//! desired state, last table), and every sync allocates and frees as much again on several
//! threads (the runtime's workers, the blocking pool, the netfilter strand). By default glibc
//! gives each thread an arena of its own and keeps what is freed inside them resident: the
//! benchmark's VmRSS was twice the live heap.
//!
//! The only `unsafe` in the daemon: two plain glibc calls with integer arguments.
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

/// Gives the pages that the allocator holds free back to the kernel (`malloc_trim(0)`):
/// after a sync, whose transient allocations (plans, kernel listings, restore input) are
/// freed by then.
pub(crate) fn release_free() {
    // SAFETY: malloc_trim takes an integer and only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
