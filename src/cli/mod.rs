//! The command line (SPEC 4): definitions and dispatch.
//!
//! `main.rs` only calls [`run`]. Exit status: 0 success; 2 bad usage or configuration;
//! 1 a runtime failure; 3 a backfill or audit that could not fetch part of its range; 4
//! `subscriptions plan` with changes pending, or an audit without `--repair` that found
//! notifications missing.

pub mod subscriptions;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::write_stdout;

use crate::config::{self, Config, ConfigError};

/// Receives Mastercard Commercial Event Notifications by push and by polling, keeps each
/// once, and hands them to sinks.
#[derive(Debug, Parser)]
#[command(name = "cen-poller", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, env = "CEN_POLLER_CONFIG", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// One-shot: fetch RANGE (`FROM..TO`, `FROM..` or a duration like `24h`), deliver,
    /// print a summary and exit.
    #[arg(long, value_name = "RANGE")]
    pub backfill: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration file and load every key and certificate it names.
    CheckConfig,
    /// Watermark, lag, counts by subject and path, sink backlogs, dead letters.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the OAuth Authorization header for a request (or, with --base-string, the
    /// signature base string to compare with the one the gateway echoes on INVALID_SIGNATURE).
    Sign(SignArgs),
    /// List or retry notifications a sink gave up on.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Simulator + daemon + file sink in a temporary directory, with a live summary.
    Demo(crate::demo::DemoArgs),
    /// Print the man page (roff) generated from this command line.
    #[command(hide = true)]
    Manpage,
    /// Print shell completions for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// A local stand-in for the CEN API (for `demo`, tests and trying things out).
    Simulate(Box<crate::simulate::SimulateArgs>),
    /// The client's subscriptions at Mastercard: list, show, create, update, delete, and
    /// plan/apply of the configuration's [[subscriptions]].
    Subscriptions {
        #[command(subcommand)]
        action: subscriptions::SubscriptionsAction,
    },
    /// The fields subscriptions can filter on (GET /fieldmappings).
    Fieldmappings {
        /// Only this subject's fields.
        #[arg(long)]
        subject: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check that the store holds everything the API has over RANGE (default: audit.range,
    /// 7 days), list what is missing, and with --repair store and deliver it. Exit 0
    /// nothing missing (or all repaired), 4 missing, 3 a window could not be read.
    Audit {
        /// `FROM..TO`, `FROM..` or a duration like `24h` (default: `audit.range`).
        range: Option<String>,
        /// Store the missing notifications and hand them to the sinks (received_via "audit").
        #[arg(long)]
        repair: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Re-deliver stored notifications created in RANGE.
    Replay {
        /// `FROM..TO`, `FROM..` or a duration like `24h`.
        range: String,
        /// Only to this sink (default: every sink whose filter matches).
        #[arg(long)]
        sink: Option<String>,
    },
    /// Copy one machine's SQLite state (watermark, seen set, outbox, dead letters, last
    /// audit) into the PostgreSQL database of [state] (backend = "postgres"), whose schema
    /// must hold no notifications yet. Stop the daemon that uses the file first.
    MigrateState {
        /// The SQLite state database to copy (the old `state.path`).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The request body (default: empty, as for GET).
    #[arg(long, value_name = "F")]
    pub body_file: Option<PathBuf>,
    /// Reuse this nonce (to reproduce a request).
    #[arg(long, value_name = "N", requires = "timestamp")]
    pub nonce: Option<String>,
    /// Reuse this Unix timestamp (to reproduce a request).
    #[arg(long, value_name = "T", requires = "nonce")]
    pub timestamp: Option<i64>,
    /// Print the signature base string instead of the header.
    #[arg(long)]
    pub base_string: bool,
    /// The full request URL, exactly as sent (query values percent-encoded).
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// List dead letters: sink, id, subject, attempts, when it died, last error.
    List {
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Only this notification's.
        #[arg(long)]
        id: Option<String>,
        /// Machine-readable output (every field, the whole last error).
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in their sink's queue (attempts start again); a running
    /// daemon delivers them.
    Retry {
        /// Only this sink's (default: every configured sink's).
        #[arg(long)]
        sink: Option<String>,
        /// Only this notification's.
        #[arg(long)]
        id: Option<String>,
    },
}

/// A failed command, with its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    /// Exit status 2 with `e`'s message: the command line or the configuration is wrong.
    pub fn usage(e: impl std::fmt::Display) -> Self {
        CliError::Usage(e.to_string())
    }

    /// Exit status 1 with `e`'s message: the command failed while running.
    pub fn runtime(e: impl std::fmt::Display) -> Self {
        CliError::Runtime(e.to_string())
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) | CliError::Usage(_) => ExitCode::from(2),
            CliError::Runtime(_) => ExitCode::from(1),
        }
    }
}

/// Runs the command line and returns the process's exit status.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // Not eprintln!: it panics when standard error cannot be written.
            let _ = writeln!(std::io::stderr(), "cen-poller: {e}");
            e.exit_code()
        }
    }
}

/// [`write_stdout`] for a command's report.
fn emit(text: &str) -> Result<(), CliError> {
    write_stdout(text).map(drop).map_err(CliError::runtime)
}

fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match (&cli.command, &cli.backfill) {
        (Some(_), Some(_)) => Err(CliError::Usage("--backfill cannot be combined with a subcommand".into())),
        (Some(Command::CheckConfig), None) => check_config(&cli.config),
        (Some(Command::Sign(args)), None) => sign(&cli.config, args),
        (Some(Command::Status { json }), None) => status(&cli.config, *json),
        (Some(Command::Demo(args)), None) => demo(args.clone()),
        (Some(Command::Manpage), None) => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut out)
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            emit(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
        (Some(Command::Completions { shell }), None) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut command, "cen-poller", &mut out);
            emit(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
        (Some(Command::Simulate(args)), None) => simulate((**args).clone()),
        (None, Some(range)) => backfill(&cli.config, range),
        (None, None) => daemon(&cli.config),
        (Some(Command::DeadLetters { action }), None) => dead_letters(&cli.config, action),
        (Some(Command::Replay { range, sink }), None) => replay(&cli.config, range, sink.as_deref()),
        (Some(Command::MigrateState { from }), None) => migrate_state(&cli.config, from),
        (Some(Command::Subscriptions { action }), None) => subscriptions::run(&cli.config, action),
        (Some(Command::Fieldmappings { subject, json }), None) => {
            subscriptions::fieldmappings(&cli.config, subject.as_deref(), *json)
        }
        (Some(Command::Audit { range, repair, json }), None) => audit(&cli.config, range.as_deref(), *repair, *json),
    }
}

/// Loads the configuration and starts logging as it says.
fn load_and_log(path: &Path) -> Result<Config, CliError> {
    let config = Config::load(path)?;
    crate::logging::init(config.log.format, &config.log.level).map_err(CliError::usage)?;
    Ok(config)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
}

fn daemon(path: &Path) -> Result<ExitCode, CliError> {
    let runtime = runtime()?;
    // Catch SIGTERM/SIGINT before the slow part of start-up (keys, store): a stop then
    // (systemd stopping a unit that is still starting) is an orderly one, exit 0.
    let signals = {
        let _context = runtime.enter();
        crate::service::Signals::install().map_err(|e| CliError::Runtime(e.to_string()))?
    };
    let config = load_and_log(path)?;
    config.load_secrets()?;
    runtime.block_on(crate::service::run_daemon(config, signals)).map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

fn backfill(path: &Path, range_text: &str) -> Result<ExitCode, CliError> {
    use crate::poll::range::{check_retention, parse_range};
    let config = load_and_log(path)?;
    config.load_secrets()?;
    let now = chrono::Utc::now();
    let range = parse_range(range_text, now, config.poll.settle.delta()).map_err(CliError::usage)?;
    check_retention(&range, now).map_err(CliError::usage)?;
    let report = runtime()?
        .block_on(crate::service::run_backfill(&config, range))
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    // The exit status tells how the backfill went; a summary that cannot be shown is only
    // reported beside it.
    if let Err(e) = emit(&report.summary()) {
        let _ = writeln!(std::io::stderr(), "cen-poller: {e}");
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn audit(path: &Path, range_text: Option<&str>, repair: bool, json: bool) -> Result<ExitCode, CliError> {
    use crate::poll::range::{Range, check_retention, parse_range};
    let config = load_and_log(path)?;
    config.load_secrets()?;
    let now = chrono::Utc::now();
    let settle = config.poll.settle.delta();
    let range = match range_text {
        Some(text) => parse_range(text, now, settle).map_err(CliError::usage)?,
        None => Range { from: now - config.audit.range.delta(), to: now - settle },
    };
    check_retention(&range, now).map_err(CliError::usage)?;
    let report = runtime()?
        .block_on(crate::service::run_audit(&config, range, repair))
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&report).expect("an audit report serialises"))
    } else {
        report.summary()
    };
    // The exit status tells how the audit went; a report that cannot be shown is only
    // reported beside it.
    if let Err(e) = emit(&text) {
        let _ = writeln!(std::io::stderr(), "cen-poller: {e}");
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn status(path: &Path, json: bool) -> Result<ExitCode, CliError> {
    let config = Config::load(path)?;
    let mut report =
        runtime()?.block_on(crate::status::collect(&config)).map_err(|e| CliError::Runtime(e.to_string()))?;
    report.subscriptions = Some(crate::service::subscriptions::status_section(&config));
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report).expect("a status report serialises")))?;
    } else {
        emit(&report.text())?;
    }
    Ok(ExitCode::SUCCESS)
}

impl From<crate::operations::OpError> for CliError {
    fn from(e: crate::operations::OpError) -> Self {
        match e {
            crate::operations::OpError::Usage(m) => CliError::Usage(m),
            crate::operations::OpError::Runtime(m) => CliError::Runtime(m),
        }
    }
}

fn dead_letters(path: &Path, action: &DeadLetterAction) -> Result<ExitCode, CliError> {
    use crate::operations as ops;
    let config = Config::load(path)?;
    let text = runtime()?.block_on(async {
        match action {
            DeadLetterAction::List { sink, id, json } => {
                ops::check_sink(&config, sink.as_deref())?;
                let store = ops::open_store(&config).await?;
                let rows = ops::list_dead_letters(&store, sink.as_deref(), id.as_deref()).await?;
                Ok::<_, ops::OpError>(if *json {
                    format!("{}\n", serde_json::to_string_pretty(&rows).expect("dead letters serialise"))
                } else {
                    ops::dead_letters_table(&rows)
                })
            }
            DeadLetterAction::Retry { sink, id } => {
                ops::check_sink(&config, sink.as_deref())?;
                let store = ops::open_store(&config).await?;
                Ok(ops::retry_dead_letters(&config, &store, sink.as_deref(), id.as_deref()).await?.text())
            }
        }
    })?;
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn migrate_state(path: &Path, from: &Path) -> Result<ExitCode, CliError> {
    let config = Config::load(path)?;
    let crate::store::Location::Postgres(to) = crate::service::store_location(&config).map_err(CliError::usage)? else {
        return Err(CliError::Usage(format!(
            "{}: migrate-state copies into PostgreSQL; set [state] backend = \"postgres\" and url_file first",
            path.display()
        )));
    };
    let copied =
        runtime()?.block_on(crate::store::transfer::sqlite_to_postgres(from, &to)).map_err(CliError::runtime)?;
    let watermark = copied
        .watermark
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| "none".to_owned(), crate::cen::notification::format_timestamp);
    emit(&format!(
        "copied {} notifications, {} outbox rows, {} dead letters and the watermark ({watermark}) from {} into schema {}\n",
        copied.notifications,
        copied.outbox,
        copied.dead_letters,
        from.display(),
        to.schema
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn replay(path: &Path, range_text: &str, sink: Option<&str>) -> Result<ExitCode, CliError> {
    use crate::operations as ops;
    let config = Config::load(path)?;
    let now = chrono::Utc::now();
    // The API's retention does not apply: the notifications are replayed from the local
    // store (state.keep bounds what is there; the report says so).
    let range = crate::poll::range::parse_range(range_text, now, config.poll.settle.delta())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    ops::check_sink(&config, sink)?;
    let report = runtime()?.block_on(async {
        let store = ops::open_store(&config).await?;
        ops::replay(&config, &store, range, sink, now).await
    })?;
    emit(&report.text())?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: &Path) -> Result<ExitCode, CliError> {
    let config = Config::load(path)?;
    config.load_secrets()?;
    config.check_files()?;
    // Exit 2 like the other configuration errors: the sink's settings are wrong.
    crate::sinks::check(&config.sinks, &config).map_err(CliError::usage)?;
    emit(&format!(
        "{}: OK ({} sink{}, push {}, vgs {})\n",
        path.display(),
        config.sinks.len(),
        if config.sinks.len() == 1 { "" } else { "s" },
        if config.push.is_some() { "on" } else { "off" },
        if config.vgs.is_some() { "on" } else { "off" },
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn sign(path: &Path, args: &SignArgs) -> Result<ExitCode, CliError> {
    let config = Config::load(path)?;
    let signer = config.load_secrets()?.signer;
    let body = match &args.body_file {
        Some(f) => {
            std::fs::read(f).map_err(|e| CliError::Usage(format!("cannot read --body-file {}: {e}", f.display())))?
        }
        None => Vec::new(),
    };
    if let Some(nonce) = &args.nonce
        && nonce.is_empty()
    {
        return Err(CliError::Usage("--nonce must not be empty".into()));
    }
    let params = signer.params(&body, args.nonce.clone(), args.timestamp);
    let signed = signer
        .sign_with(&args.method.to_ascii_uppercase(), &args.url, &params)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if args.base_string {
        emit(&format!("{}\n", signed.base_string))?;
    } else {
        emit(&format!("Authorization: {}\n", signed.authorization))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn simulate(args: crate::simulate::SimulateArgs) -> Result<ExitCode, CliError> {
    crate::logging::init(crate::config::LogFormat::Text, "info").map_err(CliError::usage)?;
    runtime()?
        .block_on(async {
            let shutdown = tokio_util::sync::CancellationToken::new();
            tokio::spawn(crate::service::handle_signals(shutdown.clone(), || {}));
            crate::simulate::run(args, shutdown).await
        })
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

fn demo(args: crate::demo::DemoArgs) -> Result<ExitCode, CliError> {
    crate::logging::init(crate::config::LogFormat::Text, "warn").map_err(CliError::usage)?;
    runtime()?.block_on(crate::demo::run(args)).map_err(CliError::runtime)?;
    Ok(ExitCode::SUCCESS)
}
