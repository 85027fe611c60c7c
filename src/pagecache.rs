//! Letting go of file data this process has made durable and will not read again.
//!
//! The file sink's lines and the pages a WAL checkpoint copies into the state database are
//! written once, fsynced, and (apart from the few hot database pages SQLite keeps in its
//! own cache) not read back by this process. Left alone, the kernel keeps all of it in the
//! page cache: a million notifications leave ~4.6 GB there. That memory is then not free for
//! anything else on the host, and on a VM whose free memory the hypervisor takes back
//! (virtio-balloon free page reporting, as on the benchmark machine) every new page-cache
//! page first costs the host a fault: measured there as half of the backfill's system time
//! (BENCHMARKS.md, "Third round").
//!
//! Only a hint: `POSIX_FADV_DONTNEED` drops clean pages fully inside the range and leaves
//! dirty or partial ones alone, so nothing here can change what a file holds, and a
//! failure is ignored.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Rounding the start down to this catches the page the previous call left partial (and
/// so kept), for any page size up to 64 KiB; the kernel skips pages already gone cheaply.
const ALIGN: u64 = 64 * 1024;

/// Asks the kernel to drop `file`'s cached data from about `from` to its end. Call it only
/// after an fsync of that range: dirty pages would be written back first, not dropped.
pub fn forget(file: &File, from: u64) {
    let start = libc::off_t::try_from(from & !(ALIGN - 1)).unwrap_or(0);
    // Length 0: to the end of the file.
    // SAFETY: a plain system call on a descriptor `file` owns for the call's duration.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), start, 0, libc::POSIX_FADV_DONTNEED) };
}
