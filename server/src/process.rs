//! What every Rookery binary sets for its own process before it starts work.

/// Transparent huge pages off for this process, unless the environment
/// asks for them (`MIMALLOC_ALLOW_THP=1`, the allocator's own switch).
///
/// The allocator asks the kernel for huge pages on its arenas
/// (`madvise(MADV_HUGEPAGE)`), so the first touch of any 4 KiB of one
/// makes 2 MiB resident and zeroes them. A database's heap is many small,
/// short-lived buffers spread over its threads: with huge pages a restore
/// of 5M documents peaked at 200 to 245 MB of RSS, without them at 170 to
/// 182 MB, in the same time. Zeroing 2 MiB on a page fault is also a stall
/// a writer can hit; several databases advise against THP for that reason.
pub fn without_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay on");
    }
}
