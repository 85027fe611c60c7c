//! The `command` sink: runs a program once per notification with the record on its
//! standard input (SPEC 6) — the glue for anything that has no HTTP endpoint.
//!
//! Contract with the program: argv as configured (no shell), standard input = the SPEC 6
//! record followed by a newline, then closed; environment = the daemon's plus
//! `CEN_NOTIFICATION_ID` and `CEN_SUBJECT`; standard output is discarded; standard error goes
//! to the daemon's log (warn, at most [`STDERR_LOGGED`] bytes per run). Exit 0 = delivered;
//! any other exit, death by a signal, failure to start, or running past `timeout` = retried
//! with backoff (never a dead letter at once: a handler that fails may be fixed).
//!
//! Invariants:
//! - Each run is its own process group, killed as a whole at `timeout`, so a shell script's
//!   children (a hung `curl`) do not outlive it. A run is never left behind: the child is
//!   killed if the delivery is dropped (`kill_on_drop`).
//! - At most [`MAX_CONCURRENT`] runs at once per sink.
//! - A run counts as finished when the program exits; a background process it left holding
//!   standard error open delays that by `STDERR_GRACE` at most.

mod config;

pub use config::Config;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{BuildError, Outcomes, Record, Sink, SinkError};

/// Runs of one sink at once: enough to overlap a handler's start-up cost, few enough not to
/// fork-bomb the host while a backlog drains.
pub const MAX_CONCURRENT: usize = 4;

/// Records per batch: a few rounds of [`MAX_CONCURRENT`].
const MAX_BATCH: usize = 16;

/// The most standard error logged per run; the rest is read and counted, not kept.
pub const STDERR_LOGGED: usize = 4096;

/// How long standard error is still read after the program exited (a background child may
/// keep it open).
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// Longest excerpt of standard error kept in the error (and so in `last_error`).
const ERROR_EXCERPT: usize = 200;

/// Why a command sink cannot be built from its entry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("command must name a program")]
    NoProgram,
    #[error("timeout must be more than 0s")]
    ZeroTimeout,
    #[error("command {path}: {problem}")]
    Program { path: PathBuf, problem: ProgramProblem },
}

/// Why the program a command sink names cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramProblem {
    #[error("{0}")]
    Unreadable(#[source] std::io::Error),
    #[error("is not a file")]
    NotAFile,
    #[error("is not executable (chmod +x)")]
    NotExecutable,
}

/// Runs a program per record.
pub struct CommandSink {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl CommandSink {

    /// `argv[0]` is the program (already resolved by the caller), the rest its arguments.
    pub fn new(name: &str, argv: &[String], program: PathBuf, timeout: Duration) -> Result<CommandSink, BuildError> {
        let fail = |e: Error| BuildError::new("command", name, e);
        if argv.is_empty() {
            return Err(fail(Error::NoProgram));
        }
        if timeout.is_zero() {
            return Err(fail(Error::ZeroTimeout));
        }
        // A path (not a bare name looked up in PATH) can be checked now, so a typo stops the
        // start (or the SIGHUP) instead of filling the outbox with retries.
        if program.components().count() > 1 {
            check_executable(&program).map_err(|problem| fail(Error::Program { path: program.clone(), problem }))?;
        }
        Ok(CommandSink { name: name.to_owned(), program, args: argv[1..].to_vec(), timeout })
    }

    /// One run for one record.
    async fn run(&self, item: &Record) -> Result<(), SinkError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env("CEN_NOTIFICATION_ID", &item.id)
            .env("CEN_SUBJECT", &item.subject)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            SinkError::Retryable(format!("cannot start {}: {e}; check the sink's command", self.program.display()))
        })?;
        let pid = child.id();
        // Standard input on its own task: a program that reads nothing must not block the
        // wait below (a record longer than the pipe buffer); it ends with EPIPE then.
        if let Some(mut stdin) = child.stdin.take() {
            let mut input = Vec::with_capacity(item.record.len() + 1);
            input.extend_from_slice(item.record.as_bytes());
            input.push(b'\n');
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
                // Dropping stdin closes it: the program sees the end of its input.
            });
        }
        let mut stderr = Captured::default();
        let mut pipe = child.stderr.take();
        // Until the exit: bounded by the timeout. After it: standard error is read for
        // STDERR_GRACE more at most, which does not count against the timeout (a background
        // child still writing must not turn a success into a kill).
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut buf = [0u8; 4096];
        let mut status = None;
        let mut grace_until = deadline;
        loop {
            tokio::select! {
                s = child.wait(), if status.is_none() => {
                    status = Some(s);
                    grace_until = tokio::time::Instant::now() + STDERR_GRACE;
                    if pipe.is_none() {
                        break;
                    }
                }
                read = read_some(&mut pipe, &mut buf) => match read {
                    Some(n) => stderr.push(&buf[..n]),
                    None => {
                        pipe = None;
                        if status.is_some() {
                            break;
                        }
                    }
                },
                _ = tokio::time::sleep_until(grace_until), if status.is_some() => break,
                _ = tokio::time::sleep_until(deadline), if status.is_none() => break,
            }
        }
        let outcome = match status {
            Some(Ok(status)) if status.success() => Ok(()),
            Some(Ok(status)) => Err(format!("{} {}", self.program.display(), describe(status))),
            Some(Err(e)) => Err(format!("cannot wait for {}: {e}", self.program.display())),
            None => {
                kill_group(pid);
                // Reap it, so no zombie is left; SIGKILL cannot be ignored, so this is quick.
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                Err(format!(
                    "{} did not finish within {:?} and was killed (see the sink's timeout)",
                    self.program.display(),
                    self.timeout
                ))
            }
        };
        if !stderr.kept.is_empty() {
            // The handler's own words; it must not print card data (README, G6).
            tracing::warn!(sink = %self.name, id = %item.id, stderr = %stderr.text(), "command wrote to standard error");
        }
        outcome.map_err(|e| match stderr.last_line() {
            Some(line) => SinkError::Retryable(format!("{e}: {line}")),
            None => SinkError::Retryable(e),
        })
    }
}

/// Reads from the pipe, or waits forever once it is closed (so `select!` ignores it).
async fn read_some(pipe: &mut Option<tokio::process::ChildStderr>, buf: &mut [u8]) -> Option<usize> {
    match pipe {
        Some(p) => match p.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// Standard error of one run: the first [`STDERR_LOGGED`] bytes, the last few hundred
/// (where a failing program usually says why), and how many there were.
#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    tail: Vec<u8>,
    total: usize,
}

/// Bytes of the end of standard error kept for the error excerpt.
const TAIL: usize = 1024;

impl Captured {
    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        let room = STDERR_LOGGED.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }

    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).trim_end().to_owned();
        if self.total > self.kept.len() {
            text.push_str(&format!(" … ({} more bytes not logged)", self.total - self.kept.len()));
        }
        text
    }

    /// The last non-empty line, cut to [`ERROR_EXCERPT`] characters: usually the error.
    fn last_line(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.tail);
        let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
        Some(line.chars().take(ERROR_EXCERPT).collect())
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// SIGKILL to the run's process group (its pid: it was started as a group leader).
fn kill_group(pid: Option<u32>) {
    // The group is ours (process_group(0) at spawn) and still unreaped, so its id is not
    // reused.
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) else { return };
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

fn check_executable(path: &std::path::Path) -> Result<(), ProgramProblem> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(ProgramProblem::Unreadable)?;
    if !meta.is_file() {
        return Err(ProgramProblem::NotAFile);
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(ProgramProblem::NotExecutable);
    }
    Ok(())
}

impl Sink for CommandSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Record]) -> BoxFuture<'a, Outcomes> {
        Box::pin(async move {
            // Collected first: a stream holding the mapping closure trips the compiler's
            // higher-ranked `Send` check on this boxed future.
            let runs: Vec<_> = batch.iter().map(|item| self.run(item)).collect();
            futures::stream::iter(runs).buffered(MAX_CONCURRENT).collect().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sinks::test_record as leased;

    fn sh(script: &str, timeout: Duration) -> CommandSink {
        let argv: Vec<String> = ["/bin/sh", "-c", script].iter().map(|s| s.to_string()).collect();
        CommandSink::new("handler", &argv, PathBuf::from("/bin/sh"), timeout).unwrap()
    }

    #[tokio::test]
    async fn the_record_arrives_on_stdin_and_exit_status_decides() {
        let dir = tempfile::tempdir().unwrap();
        // Runs overlap (up to MAX_CONCURRENT), so each writes its own file.
        let script = format!(
            "f={}/$CEN_NOTIFICATION_ID; cat > $f; echo \"$CEN_SUBJECT\" >> $f; [ \"$CEN_NOTIFICATION_ID\" != b ]",
            dir.path().display()
        );
        let sink = sh(&script, Duration::from_secs(10));
        let outcomes = sink.deliver(&[leased("a"), leased("b")]).await;
        assert_eq!(outcomes[0], Ok(()));
        assert!(
            matches!(&outcomes[1], Err(SinkError::Retryable(e)) if e.contains("exited with status 1")),
            "{outcomes:?}"
        );
        for id in ["a", "b"] {
            let text = std::fs::read_to_string(dir.path().join(id)).unwrap();
            assert_eq!(text, format!("{{\"id\":\"{id}\"}}\nCLEARING\n"));
        }
    }

    #[tokio::test]
    async fn a_hung_run_and_its_children_are_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The shell starts a child that would outlive it if only the shell were killed.
        let sink = sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()), Duration::from_millis(300));
        let started = std::time::Instant::now();
        let outcomes = sink.deliver(&[leased("a")]).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(matches!(&outcomes[0], Err(SinkError::Retryable(e)) if e.contains("was killed")), "{outcomes:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // The group's SIGKILL reached the sleep too (it may linger briefly as a zombie of
        // init; a zombie has state Z).
        let gone = (0..50).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
                .unwrap_or(false);
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "the shell's child {pid} survived the timeout");
    }

    #[tokio::test]
    async fn a_background_child_holding_stderr_does_not_turn_success_into_a_kill() {
        // Exits 0 at once, leaving a child that writes to standard error for up to 5s.
        let sink = sh("(for i in $(seq 1 100); do echo x >&2; sleep 0.05; done) & exit 0", Duration::from_millis(300));
        let started = std::time::Instant::now();
        let outcomes = sink.deliver(&[leased("a")]).await;
        assert_eq!(outcomes, [Ok(())]);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn stderr_is_captured_and_cut() {
        let sink = sh(
            "head -c 10000 /dev/zero | tr '\\0' x >&2; echo >&2; echo 'disk full' >&2; exit 3",
            Duration::from_secs(10),
        );
        let outcomes = sink.deliver(&[leased("a")]).await;
        assert!(
            matches!(&outcomes[0], Err(SinkError::Retryable(e)) if e.contains("status 3: disk full")),
            "{outcomes:?}"
        );
        let mut c = Captured::default();
        c.push(&[b'x'; 5000]);
        assert_eq!(c.kept.len(), STDERR_LOGGED);
        assert!(c.text().ends_with("(904 more bytes not logged)"), "{}", c.text());
    }

    #[test]
    fn a_missing_or_unexecutable_program_is_refused_at_start() {
        let argv = vec!["/nonexistent/handler".to_owned()];
        let e = CommandSink::new("handler", &argv, PathBuf::from(&argv[0]), Duration::from_secs(1)).err().unwrap().to_string();
        assert!(e.contains("sink \"handler\"") && e.contains("/nonexistent/handler"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("h.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let e = CommandSink::new("handler", &argv, script, Duration::from_secs(1)).err().unwrap().to_string();
        assert!(e.contains("not executable"), "{e}");
    }
}
