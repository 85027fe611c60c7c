//! `cen-poller simulate`: the simulator as a command (flags → [`SimConfig`], serve until
//! shutdown, one log line a minute).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{FaultRates, PushTarget, SimConfig, SimError, Simulator};
use crate::cen::keys::load_public_key;

/// The flags of `cen-poller simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to serve the API on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seed of the generated notifications: the same seed gives the same notifications.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Notifications created per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// How much history exists at start (`30s`, `15m`, `24h`, `7d`).
    #[arg(long, default_value = "1h", value_parser = crate::units::parse_duration)]
    pub backlog: Duration,
    /// Stop after this many notifications (default: a live stream without end).
    #[arg(long)]
    pub count: Option<u64>,
    /// How long notifications stay pollable.
    #[arg(long, default_value = "7d", value_parser = crate::units::parse_duration)]
    pub retention: Duration,
    /// Largest page served; larger `limit`s are capped.
    #[arg(long, default_value_t = 1000)]
    pub max_limit: u64,
    /// Verify OAuth signatures with this certificate or PEM public key.
    #[arg(long, value_name = "PATH")]
    pub public_key: Option<PathBuf>,
    /// Accept only this consumer key (with --public-key).
    #[arg(long, requires = "public_key")]
    pub consumer_key: Option<String>,
    /// Probability that a notifications request gets a 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Probability that a notifications request gets a 429.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// `Retry-After` of those 429s.
    #[arg(long, default_value = "1s", value_parser = crate::units::parse_duration)]
    pub retry_after: Duration,
    /// Probability that an answer is delayed by --slow-by.
    #[arg(long, default_value_t = 0.0)]
    pub slow_rate: f64,
    #[arg(long, default_value = "2s", value_parser = crate::units::parse_duration)]
    pub slow_by: Duration,
    /// Probability that a 200's JSON is cut in the middle.
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Fraction of notifications that become visible --late-by after their creation.
    #[arg(long, default_value_t = 0.0)]
    pub late_fraction: f64,
    #[arg(long, default_value = "5m", value_parser = crate::units::parse_duration)]
    pub late_by: Duration,
    /// Probability, per page request with offset > 0, that one notification of the window
    /// expires and another appears (total unchanged).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Also push the notifications to this URL (JSON arrays, like Mastercard).
    #[arg(long)]
    pub push_url: Option<String>,
    /// Client certificate (PEM) to push with.
    #[arg(long, requires = "push_key", value_name = "PATH")]
    pub push_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "push_cert", value_name = "PATH")]
    pub push_key: Option<PathBuf>,
    /// CA certificate (PEM) of the push endpoint's server certificate.
    #[arg(long, value_name = "PATH")]
    pub push_ca: Option<PathBuf>,
    /// Fraction of notifications never pushed (only pull can recover them).
    #[arg(long, default_value_t = 0.0)]
    pub push_drop: f64,
    /// Fraction of pushed notifications sent twice.
    #[arg(long, default_value_t = 0.0)]
    pub push_duplicate: f64,
    /// Notifications per push request.
    #[arg(long, default_value_t = 10)]
    pub push_batch_size: usize,
    /// Attempts per push request before its notifications are FAILED.
    #[arg(long, default_value_t = 3)]
    pub push_max_attempts: u32,
}

fn read_text(path: &Path) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|source| SimError::Read { path: path.into(), source })
}

impl SimulateArgs {
    /// The configuration these flags describe (reads the key and certificate files).
    pub fn to_config(&self) -> Result<SimConfig, SimError> {
        let public_key = self.public_key.as_deref().map(load_public_key).transpose()?;
        let push = match &self.push_url {
            None => None,
            Some(url) => Some(PushTarget {
                client_cert_pem: self.push_cert.as_deref().map(read_text).transpose()?,
                client_key_pem: self.push_key.as_deref().map(read_text).transpose()?,
                ca_pem: self.push_ca.as_deref().map(read_text).transpose()?,
                drop_fraction: self.push_drop,
                duplicate_fraction: self.push_duplicate,
                batch_size: self.push_batch_size,
                max_attempts: self.push_max_attempts,
                ..PushTarget::new(url.clone())
            }),
        };
        let config = SimConfig {
            count: self.count,
            retention: self.retention,
            late_fraction: self.late_fraction,
            late_by: self.late_by,
            max_limit: self.max_limit,
            default_limit: 200.min(self.max_limit.max(1)),
            public_key,
            consumer_key: self.consumer_key.clone(),
            faults: FaultRates {
                error_rate: self.error_rate,
                rate_limit_rate: self.rate_limit_rate,
                retry_after: self.retry_after,
                slow_rate: self.slow_rate,
                slow_by: self.slow_by,
                truncate_rate: self.truncate_rate,
                churn: self.churn,
                ..FaultRates::default()
            },
            push,
            ..SimConfig::live(self.seed, self.rate, self.backlog)
        };
        config.validate()?;
        Ok(config)
    }
}

/// Runs `cen-poller simulate` until `shutdown` is cancelled, logging counts once a minute.
pub async fn run(args: SimulateArgs, shutdown: CancellationToken) -> Result<(), SimError> {
    let config = args.to_config()?;
    let sim = Simulator::try_new(config)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| SimError::Listen { addr: args.listen, source })?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(
        %addr,
        seed = args.seed,
        rate = args.rate,
        backlog_secs = args.backlog.as_secs(),
        count = ?args.count,
        oauth = args.public_key.is_some(),
        push = args.push_url.is_some(),
        "CEN simulator listening; base URL http://{addr}/commercial-event-notifications"
    );
    let serving = sim.clone();
    let token = shutdown.clone();
    let mut server = tokio::spawn(async move { serving.serve(listener, token).await });
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    ticker.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            result = &mut server => {
                let result = result.map_err(|e| SimError::Serve(std::io::Error::other(e)))?;
                log_stats(&sim);
                return result.map_err(SimError::Serve);
            }
            _ = ticker.tick() => log_stats(&sim),
        }
    }
}

fn log_stats(sim: &Simulator) {
    let s = sim.stats();
    let errors: u64 = s.by_status.iter().filter(|(code, _)| **code >= 400).map(|(_, n)| n).sum();
    tracing::info!(
        requests = s.requests,
        errors,
        count_queries = s.count_queries,
        pages = s.page_requests,
        served = s.notifications_served,
        faults = s.faults_injected,
        churned = s.churned,
        pushed = s.pushed,
        push_dropped = s.push_dropped,
        push_duplicated = s.push_duplicated,
        push_failed = s.push_failed,
        "simulator counts"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn flags_become_a_configuration() {
        let cli = Cli::try_parse_from([
            "simulate",
            "--seed",
            "9",
            "--rate",
            "5",
            "--backlog",
            "2h",
            "--count",
            "100",
            "--error-rate",
            "0.1",
            "--late-fraction",
            "0.2",
            "--late-by",
            "30s",
            "--churn",
            "0.5",
        ])
        .unwrap();
        let c = cli.args.to_config().unwrap();
        assert_eq!((c.seed, c.rate, c.count), (9, 5.0, Some(100)));
        assert_eq!(c.late_by, Duration::from_secs(30));
        assert_eq!(c.faults.error_rate, 0.1);
        let age = chrono::Utc::now() - c.stream_start;
        assert!((age.num_seconds() - 7200).abs() < 60);
        assert!(c.push.is_none() && c.public_key.is_none());

        let bad = Cli::try_parse_from(["simulate", "--error-rate", "2"]).unwrap();
        assert!(bad.args.to_config().is_err());
        assert!(Cli::try_parse_from(["simulate", "--push-cert", "c.pem"]).is_err());
    }

    #[tokio::test]
    async fn run_serves_until_shutdown_and_reports_a_busy_port() {
        let cli = Cli::try_parse_from(["simulate", "--listen", "127.0.0.1:0"]).unwrap();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(run(cli.args, shutdown.clone()));
        shutdown.cancel();
        let result =
            tokio::time::timeout(Duration::from_secs(10), running).await.expect("run returns after shutdown").unwrap();
        assert!(result.is_ok(), "{result:?}");

        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap().to_string();
        let cli = Cli::try_parse_from(["simulate", "--listen", &addr]).unwrap();
        let e = run(cli.args, CancellationToken::new()).await.unwrap_err();
        assert!(matches!(e, SimError::Listen { .. }), "{e}");
    }
}
