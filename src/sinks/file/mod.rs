//! The `file` sink: JSON Lines appended to one file, `fsync`ed before acknowledging.
//!
//! Each batch is written as whole lines (`writev`, one call per 512 lines) and one `fsync`, so a
//! crash leaves at most a torn last line that was never acknowledged (it is delivered again
//! after the restart, G2). SIGHUP reopens the file so logrotate can move it away.
//!
//! Invariants:
//! - A batch starts on a new line: when the file does not end with a newline (the last
//!   write was torn by a kill), one is written first, so the torn fragment stays a line of
//!   its own instead of swallowing the first record of the batch — a record that would be
//!   acknowledged yet unreadable.
//! - A batch is written under an exclusive advisory lock (`flock`) on the file, so two
//!   processes appending to it (the daemon and a `--backfill`) never interleave their
//!   batches, and the torn-line check never sees the other's write half done.

mod config;

pub use config::Config;

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;

use super::{BuildError, Outcomes, Record, Sink, SinkError};

/// Why the file cannot be opened for appending.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} is a directory, not a file")]
    Directory(PathBuf),
    #[error("cannot create directory {dir}: {source}")]
    CreateDirectory {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {path} for appending: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct FileSink {
    name: String,
    path: PathBuf,
    file: Mutex<File>,
    reopen: AtomicBool,
}

impl FileSink {
    /// Opens (creating) `path` for appending.
    pub fn open(name: &str, path: &Path) -> Result<FileSink, BuildError> {
        Ok(FileSink {
            name: name.to_owned(),
            path: path.to_owned(),
            file: Mutex::new(open_append(path).map_err(|e| BuildError::new("file", name, e))?),
            reopen: AtomicBool::new(false),
        })
    }

    fn write_batch(&self, batch: &[Record]) -> Result<(), SinkError> {
        // The records and their newlines go to the kernel as they are (writev), not copied
        // into one buffer first: that was ~2 MB of copying per full batch.
        let mut lines: Vec<IoSlice<'_>> = Vec::with_capacity(batch.len() * 2);
        for item in batch {
            lines.push(IoSlice::new(item.record.as_bytes()));
            lines.push(IoSlice::new(b"\n"));
        }
        let mut file = self.file.lock().map_err(|_| SinkError::Retryable("file sink lock poisoned".into()))?;
        if self.reopen.swap(false, Ordering::AcqRel) {
            *file = open_append(&self.path).map_err(|e| SinkError::Retryable(e.to_string()))?;
        }
        let fail = |what: &str, e: std::io::Error| SinkError::Retryable(format!("{what} {}: {e}", self.path.display()));
        file.lock().map_err(|e| fail("cannot lock", e))?;
        let written = append_lines(&mut file, &mut lines);
        // Closing the file would release the lock too; an unlock error changes nothing.
        let _ = file.unlock();
        written.map_err(|(what, e)| fail(what, e))
    }
}

/// Appends `lines` (whole lines) to `file`, on a line of their own, and syncs the data.
fn append_lines(file: &mut File, lines: &mut [IoSlice<'_>]) -> Result<(), (&'static str, std::io::Error)> {
    let len = file.metadata().map_err(|e| ("cannot read the length of", e))?.len();
    if ends_torn(file, len).map_err(|e| ("cannot read the end of", e))? {
        file.write_all(b"\n").map_err(|e| ("cannot write", e))?;
    }
    let written = write_all_vectored(file, lines).map_err(|e| ("cannot write", e))?;
    file.sync_data().map_err(|e| ("cannot fsync", e))?;
    // On disk now, and this process never reads it back (only the last byte, near the
    // tail `forget` keeps).
    crate::pagecache::forget(file, len, Some(len + written));
    Ok(())
}

/// Writes all of `bufs` (std's `write_all_vectored` is not stable yet); returns the bytes
/// written. A short write (a signal, a full pipe) continues where it stopped.
fn write_all_vectored(file: &mut File, mut bufs: &mut [IoSlice<'_>]) -> std::io::Result<u64> {
    let mut written = 0;
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n as u64;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Whether the file, `len` bytes long, ends in something other than a newline (a torn
/// write).
fn ends_torn(file: &File, len: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}

fn open_append(path: &Path) -> Result<File, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDirectory { dir: dir.to_owned(), source })?;
    }
    // Readable too: a batch looks at the last byte first (see `ends_torn`).
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|source| OpenError::Open { path: path.to_owned(), source })
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        1000
    }

    fn deliver<'a>(&'a self, batch: &'a [Record]) -> BoxFuture<'a, Outcomes> {
        Box::pin(async move {
            // Blocking file I/O inline: a few writes and one fsync per batch of up to 1000
            // records, on the dispatcher's own task; other tasks run on the other workers.
            let result = self.write_batch(batch);
            vec![result; batch.len()]
        })
    }

    fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sinks::test_record as leased;

    #[tokio::test]
    async fn a_torn_last_line_does_not_swallow_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        // What a kill in the middle of a write leaves behind.
        std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":\"b\",\"sou").unwrap();
        let sink = FileSink::open("archive", &path).unwrap();
        let outcomes = sink.deliver(&[leased("c"), leased("d")]).await;
        assert!(outcomes.iter().all(Result::is_ok));
        let outcomes = sink.deliver(&[leased("e")]).await;
        assert!(outcomes.iter().all(Result::is_ok));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":\"a\"}\n{\"id\":\"b\",\"sou\n{\"id\":\"c\"}\n{\"id\":\"d\"}\n{\"id\":\"e\"}\n"
        );
    }

    #[tokio::test]
    async fn delivered_lines_do_not_stay_in_the_page_cache() {
        // Beside the test binary, not in /tmp: tmpfs keeps its pages whatever one advises.
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        let path = dir.path().join("out.jsonl");
        let sink = FileSink::open("archive", &path).unwrap();
        let mut big = leased("a");
        big.record = format!("{{\"id\":\"a\",\"pad\":\"{}\"}}", "x".repeat(3 << 20));
        for _ in 0..2 {
            assert!(sink.deliver(std::slice::from_ref(&big)).await.iter().all(Result::is_ok));
        }
        let (cached, pages) = crate::pagecache::cached_pages(&path);
        assert!(pages > 1500, "{pages}");
        assert!(cached <= 17, "{cached} of {pages} pages still cached: more than the tail");
    }

    #[tokio::test]
    async fn a_batch_larger_than_one_writev_is_written_whole_and_in_order() {
        // 1,500 records are 3,000 slices: more than the 1,024 one writev takes, so the
        // batch goes out in several calls that must continue exactly where the last stopped.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let sink = FileSink::open("archive", &path).unwrap();
        let batch: Vec<Record> = (0..1500).map(|i| leased(&format!("n{i}"))).collect();
        assert!(sink.deliver(&batch).await.iter().all(Result::is_ok));
        let expected: String = (0..1500).map(|i| format!("{{\"id\":\"n{i}\"}}\n")).collect();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn an_empty_or_whole_file_gets_no_extra_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        let sink = FileSink::open("archive", &path).unwrap();
        sink.deliver(&[leased("a")]).await;
        let again = FileSink::open("archive", &path).unwrap();
        again.deliver(&[leased("b")]).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"id\":\"a\"}\n{\"id\":\"b\"}\n");
    }
}
