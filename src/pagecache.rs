//! Letting go of file data this process has made durable and will not read again.
//!
//! The file sink's lines and the pages a WAL checkpoint copies into the state database are
//! written once, fsynced, and (apart from the few hot database pages SQLite keeps in its
//! own cache) not read back by this process. Left alone, the kernel keeps all of it in the
//! page cache: a million notifications leave ~4.6 GB there. That memory is then not free for
//! anything else on the host, and on a VM whose free memory the hypervisor takes back
//! (virtio-balloon free page reporting, as on the benchmark machine) every new page-cache
//! page first costs the host a fault: measured there as more than half of the backfill's
//! system time (BENCHMARKS.md, "Third round").
//!
//! Only a hint: `POSIX_FADV_DONTNEED` drops the clean pages in the range (a partial page
//! only when the range runs to the end of the file) and starts writing back dirty ones
//! instead of dropping them, so nothing here can change what a file holds, and a failure
//! is ignored.

use std::fs::File;

/// Ranges are cut at this (a multiple of any page size up to 64 KiB): the start is rounded
/// down so a call catches what the previous one left, the end too so the page the next
/// append goes to stays cached (else that append reads it back from the disk first).
const ALIGN: u64 = 64 * 1024;

/// Asks the kernel to drop `file`'s cached data from about `from` up to about `to`, or to
/// the end of the file with `None`. Call it only after an fsync of that range: dirty pages
/// are written back first, not dropped.
pub fn forget(file: &File, from: u64, to: Option<u64>) {
    let start = from & !(ALIGN - 1);
    // No length means "to the end of the file".
    let len = match to {
        None => None,
        Some(to) if to & !(ALIGN - 1) > start => std::num::NonZeroU64::new((to & !(ALIGN - 1)) - start),
        Some(_) => return,
    };
    let _ = rustix::fs::fadvise(file, start, len, rustix::fs::Advice::DontNeed);
}

/// How many of `path`'s pages the page cache holds, and how many it has (`mincore`).
#[cfg(test)]
pub(crate) fn cached_pages(path: &std::path::Path) -> (usize, usize) {
    use std::os::fd::AsRawFd;
    let file = File::open(path).unwrap();
    let len = usize::try_from(file.metadata().unwrap().len()).unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    let pages = len.div_ceil(page);
    if len == 0 {
        return (0, 0);
    }
    // SAFETY: a read-only shared mapping of a file we hold open, never dereferenced; unmapped
    // below. mincore only fills `vec`, one byte per page of the mapping.
    unsafe {
        let addr = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
        assert_ne!(addr, libc::MAP_FAILED);
        let mut vec = vec![0u8; pages];
        assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
        libc::munmap(addr, len);
        (vec.iter().filter(|b| **b & 1 == 1).count(), pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsynced_data_leaves_the_page_cache_up_to_the_tail_an_append_needs() {
        // Beside the test binary, not in /tmp: tmpfs keeps its pages whatever one advises.
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        let path = dir.path().join("data");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).read(true).open(&path).unwrap();
        let write = |file: &mut File, n: usize| std::io::Write::write_all(file, &vec![b'x'; n]).unwrap();
        write(&mut file, (4 << 20) + 7);
        assert!(cached_pages(&path).0 > 1000, "written data is cached at first");
        file.sync_data().unwrap();
        forget(&file, 0, Some((4 << 20) + 7));
        let tail = (ALIGN as usize).div_ceil(4096);
        let (cached, _) = cached_pages(&path);
        assert!((1..=tail).contains(&cached), "{cached}: the last 64 KiB at most, with the partial page");
        // The next append's call, starting mid-file, drops what this one kept.
        write(&mut file, 1 << 20);
        file.sync_data().unwrap();
        forget(&file, (4 << 20) + 7, Some((5 << 20) + 7));
        let (cached, _) = cached_pages(&path);
        assert!((1..=tail).contains(&cached), "{cached}");
        // To the end: everything.
        forget(&file, 0, None);
        assert_eq!(cached_pages(&path).0, 0);
    }
}
