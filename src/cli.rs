//! The command line (SPEC 4): definitions and dispatch.
//!
//! `main.rs` only calls [`run`]. Exit status: 0 success; 2 bad usage or configuration;
//! 1 a runtime failure; 3 a backfill that could not fetch part of its range.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// A local stand-in for the CEN API (for `demo`, tests and trying things out).
    Simulate(Box<crate::simulate::SimulateArgs>),
    /// Re-deliver stored notifications created in RANGE.
    Replay {
        /// `FROM..TO`, `FROM..` or a duration like `24h`.
        range: String,
        /// Only to this sink (default: every sink whose filter matches).
        #[arg(long)]
        sink: Option<String>,
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
    /// List dead letters.
    List {
        #[arg(long)]
        sink: Option<String>,
        #[arg(long)]
        id: Option<String>,
    },
    /// Put dead letters back in the sink's queue.
    Retry {
        #[arg(long)]
        sink: Option<String>,
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
            eprintln!("cen-poller: {e}");
            e.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match (&cli.command, &cli.backfill) {
        (Some(_), Some(_)) => Err(CliError::Usage("--backfill cannot be combined with a subcommand".into())),
        (Some(Command::CheckConfig), None) => check_config(&cli.config),
        (Some(Command::Sign(args)), None) => sign(&cli.config, args),
        (Some(Command::Status { json }), None) => status(&cli.config, *json),
        (Some(Command::Demo(args)), None) => demo(args.clone()),
        (Some(Command::Simulate(args)), None) => simulate((**args).clone()),
        (None, Some(range)) => backfill(&cli.config, range),
        (None, None) => daemon(&cli.config),
        (Some(Command::DeadLetters { .. }), None) | (Some(Command::Replay { .. }), None) => {
            Err(CliError::Runtime("not implemented yet in this build".into()))
        }
    }
}

/// Loads the configuration and starts logging as it says.
fn load_and_log(path: &Path) -> Result<Config, CliError> {
    let config = Config::load(path)?;
    crate::logging::init(config.log.format, &config.log.level).map_err(CliError::Usage)?;
    Ok(config)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
}

fn daemon(path: &Path) -> Result<ExitCode, CliError> {
    let config = load_and_log(path)?;
    config.load_secrets()?;
    runtime()?.block_on(crate::service::run_daemon(config)).map_err(CliError::Runtime)?;
    Ok(ExitCode::SUCCESS)
}

fn backfill(path: &Path, range_text: &str) -> Result<ExitCode, CliError> {
    use crate::poll::range::{check_retention, parse_range};
    let config = load_and_log(path)?;
    config.load_secrets()?;
    let now = chrono::Utc::now();
    let range = parse_range(range_text, now, config.poll.settle.delta()).map_err(CliError::Usage)?;
    check_retention(&range, now).map_err(CliError::Usage)?;
    let report = runtime()?.block_on(crate::service::run_backfill(&config, range)).map_err(CliError::Runtime)?;
    print!("{}", report.summary());
    Ok(ExitCode::from(report.exit_code()))
}

fn status(path: &Path, json: bool) -> Result<ExitCode, CliError> {
    let config = Config::load(path)?;
    let report = crate::status::collect(&config).map_err(CliError::Runtime)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("a status report serialises"));
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: &Path) -> Result<ExitCode, CliError> {
    let config = Config::load(path)?;
    config.load_secrets()?;
    config.check_files()?;
    println!(
        "{}: OK ({} sink{}, push {}, vgs {})",
        path.display(),
        config.sinks.len(),
        if config.sinks.len() == 1 { "" } else { "s" },
        if config.push.is_some() { "on" } else { "off" },
        if config.vgs.is_some() { "on" } else { "off" },
    );
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
        println!("{}", signed.base_string);
    } else {
        println!("Authorization: {}", signed.authorization);
    }
    Ok(ExitCode::SUCCESS)
}

fn simulate(args: crate::simulate::SimulateArgs) -> Result<ExitCode, CliError> {
    crate::logging::init(crate::config::LogFormat::Text, "info").map_err(CliError::Usage)?;
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
    crate::logging::init(crate::config::LogFormat::Text, "warn").map_err(CliError::Usage)?;
    runtime()?.block_on(crate::demo::run(args)).map_err(CliError::Runtime)?;
    Ok(ExitCode::SUCCESS)
}
