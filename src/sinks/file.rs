//! The `file` sink: JSON Lines appended to one file, `fsync`ed before acknowledging.
//!
//! Each batch is written with one `write_all` of whole lines and one `fsync`, so a crash
//! leaves at most a torn last line that was never acknowledged (it is delivered again
//! after the restart, G2). SIGHUP reopens the file so logrotate can move it away.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;

use super::{Outcomes, Sink, SinkError};
use crate::store::Leased;

pub struct FileSink {
    name: String,
    path: PathBuf,
    file: Mutex<File>,
    reopen: AtomicBool,
}

impl FileSink {
    /// Opens (creating) `path` for appending.
    pub fn open(name: &str, path: &Path) -> Result<FileSink, String> {
        Ok(FileSink {
            name: name.to_owned(),
            path: path.to_owned(),
            file: Mutex::new(open_append(path)?),
            reopen: AtomicBool::new(false),
        })
    }

    fn write_batch(&self, batch: &[Leased]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(batch.iter().map(|l| l.record.len() + 1).sum());
        for item in batch {
            buf.extend_from_slice(item.record.as_bytes());
            buf.push(b'\n');
        }
        let mut file = self.file.lock().map_err(|_| SinkError::Retryable("file sink lock poisoned".into()))?;
        if self.reopen.swap(false, Ordering::AcqRel) {
            *file = open_append(&self.path).map_err(SinkError::Retryable)?;
        }
        let fail = |what: &str, e: std::io::Error| SinkError::Retryable(format!("{what} {}: {e}", self.path.display()));
        file.write_all(&buf).map_err(|e| fail("cannot write", e))?;
        file.sync_data().map_err(|e| fail("cannot fsync", e))
    }
}

fn open_append(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {} for appending: {e}", path.display()))
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        1000
    }

    fn deliver<'a>(&'a self, batch: &'a [Leased]) -> BoxFuture<'a, Outcomes> {
        Box::pin(async move {
            // Blocking file I/O inline: one write and one fsync per batch of up to 1000
            // records, on the dispatcher's own task; other tasks run on the other workers.
            let result = self.write_batch(batch);
            vec![result; batch.len()]
        })
    }

    fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }
}
