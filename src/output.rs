//! Reports to standard output — `status`, `dead-letters`, the subscription tables, the demo's
//! live summary — written without `print!`'s panic: a reader that went away is not a crash.

use std::io::Write;

/// Writes `text` to standard output and flushes it. Unlike `print!`, a failure is returned,
/// not a panic: a reader that went away (`cen-poller status | head -1`) or a full disk
/// must not turn a finished command into a crash with exit code 101. `Ok(false)` when the
/// reader has gone away: not an error (it has read what it wanted, as with `head`), but
/// nothing more need be written; anything else is an error that says so.
pub fn write_stdout(text: &str) -> Result<bool, String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("cannot write to standard output: {e}")),
    }
}
