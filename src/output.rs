//! Reports to standard output — `status`, `dead-letters`, the subscription tables, the demo's
//! live summary — written without `print!`'s panic: a reader that went away is not a crash.

use std::io::Write;

/// Writes `text` to standard output and flushes it. Unlike `print!`, a failure is returned,
/// not a panic: a reader that went away (`cen-poller status | head -1`) or a full disk
/// must not turn a finished command into a crash with exit code 101. `Ok(false)` when the
/// reader has gone away: not an error (it has read what it wanted, as with `head`), but
/// nothing more need be written; anything else is an error that says so.
pub fn write_stdout(text: &str) -> Result<bool, OutputError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(OutputError(e)),
    }
}

/// Standard output cannot be written (other than its reader going away): a full disk, a
/// closed descriptor. The command's report is incomplete; exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct OutputError(#[source] pub std::io::Error);
