//! The one TOML configuration file (SPEC 5), as typed structs.
//!
//! Parsing is strict — unknown keys are errors — because a misspelt key silently ignored
//! is how notifications get lost. Every error names the key and its line. Loading happens
//! in two steps: [`Config::load`] parses and checks the file; [`Config::load_secrets`]
//! (what `check-config` and the daemon run next) reads every key and secret it names, so an
//! unreadable key file is reported before the daemon starts, not at the first request.
//!
//! Secrets are given as files. A relative path is looked up first in
//! `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`), then next to the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

pub use crate::cen::SUBJECTS as CEN_SUBJECTS;
pub use crate::logging::LogFormat;
pub use crate::server::ListenerLimits;
use crate::sinks::SecretError;
pub use crate::sinks::SinkConfig;
pub use crate::units::{Dur, Size, format_duration, parse_duration, parse_size};

use crate::cen::keys::{KeyError, SigningKey};
use crate::cen::oauth::Signer;

/// The default path of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/cen-poller/config.toml";

/// Why the configuration cannot be used. Exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// toml's message already says "at line N, column M", shows the line and names the key.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}:{line}: `{key}`: {message}", line = line.map_or("?".to_string(), |l| l.to_string()))]
    Invalid { path: PathBuf, key: String, line: Option<usize>, message: String },
    #[error("{key}: {source}")]
    Key { key: String, source: KeyError },
    #[error("{key}: cannot read secret file {path}: {source} (check the path, or LoadCredential= in the unit)")]
    Secret { key: String, path: PathBuf, source: std::io::Error },
    #[error("{key}: secret file {path} is empty")]
    EmptySecret { key: String, path: PathBuf },
}

/// Why the API client of `[api]` cannot be made. Exit status 2 for a command, a failed
/// start for the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    /// The consumer key, the signing key or its password.
    #[error(transparent)]
    Secrets(#[from] ConfigError),
    #[error("api.ca_file: cannot read {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(crate::cen::client::ApiError),
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Mastercard API and the credentials that sign requests to it. Required.
    pub api: ApiConfig,
    #[serde(default)]
    pub poll: PollConfig,
    #[serde(default)]
    pub state: StateConfig,
    /// The mTLS endpoint Mastercard pushes to. Optional: without it cen-poller only polls.
    pub push: Option<PushConfig>,
    /// The VGS webhook endpoint. Optional.
    pub vgs: Option<VgsConfig>,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// The scheduled audit (SPEC 12).
    #[serde(default)]
    pub audit: AuditConfig,
    /// Where notifications go. Without sinks they are stored (and replayable) only.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// Subscriptions as code (SPEC 11): what `subscriptions plan`/`apply` make the API match
    /// and the daemon watches. Default none: the daemon then only reports what the API lists.
    #[serde(default)]
    pub subscriptions: Vec<crate::subscriptions::SubscriptionConfig>,
    /// The file this was read from; relative paths are resolved next to it.
    #[serde(skip)]
    pub path: PathBuf,
    /// `$CREDENTIALS_DIRECTORY` when the file was loaded (systemd `LoadCredential=`).
    #[serde(skip)]
    pub credentials_dir: Option<PathBuf>,
}

/// `[api]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Base URL, up to and without `/notifications`. Default: production,
    /// `https://api.mastercard.com/commercial-event-notifications`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The consumer key from Mastercard's developer portal. Prefer `consumer_key_file`.
    pub consumer_key: Option<String>,
    /// A file holding the consumer key (whitespace around it is ignored).
    pub consumer_key_file: Option<PathBuf>,
    /// The signing key: a PKCS#12 keystore as downloaded (legacy encryption is fine) or a
    /// PEM key (PKCS#8 or PKCS#1). Required.
    pub signing_key: PathBuf,
    /// A file holding the keystore password. Required for PKCS#12.
    pub signing_key_password_file: Option<PathBuf>,
    /// The keystore alias; may be left out when the keystore holds one key.
    pub signing_key_alias: Option<String>,
    /// Per-request timeout. Default `30s`.
    #[serde(default = "default_api_timeout")]
    pub timeout: Dur,
    /// An extra CA certificate (PEM) to trust besides the system's roots — for a proxy or
    /// a test server. Default: none.
    pub ca_file: Option<PathBuf>,
    /// Only notifications of these subscriptions (`subscription_name`). Default: all.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Only notifications with these push statuses. Default: all. With a filter the poller
    /// cannot compare counts and reads every sub-window (SPEC 8).
    #[serde(default, deserialize_with = "push_statuses")]
    pub push_status: Vec<String>,
}

/// `[poll]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// Time between cycles. Default `60s`.
    #[serde(default = "d60s")]
    pub interval: Dur,
    /// How far behind the watermark each cycle looks again, to catch notifications that
    /// become visible late (G3). Default `15m`.
    #[serde(default = "d15m")]
    pub lookback: Dur,
    /// The window ends this far behind the API's clock, so a window is not read while the
    /// API may still be adding to it. Default `60s`.
    #[serde(default = "d60s")]
    pub settle: Dur,
    /// Notifications per request (`limit`). Default 200, the API's default.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// After downtime, catch up in windows of at most this span. Default `1h`.
    #[serde(default = "d1h")]
    pub max_window: Dur,
    /// Where a new state database starts. Default `lookback`.
    #[serde(default)]
    pub first_start: FirstStart,
}

/// `poll.first_start`: where a new state database starts polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstStart {
    /// now − lookback: only what is new (the default).
    #[default]
    Lookback,
    /// 7 days back: everything the API still has.
    Retention,
    /// A fixed time.
    At(DateTime<Utc>),
}

impl<'de> Deserialize<'de> for FirstStart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "lookback" => Ok(FirstStart::Lookback),
            "retention" => Ok(FirstStart::Retention),
            other => DateTime::parse_from_rfc3339(other).map(|t| FirstStart::At(t.with_timezone(&Utc))).map_err(|_| {
                serde::de::Error::custom(format!(
                    "{other:?} is not \"lookback\", \"retention\" or an RFC 3339 time like \"2026-11-20T00:00:00Z\""
                ))
            }),
        }
    }
}

/// `[state]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Where the state lives: `sqlite` (default: one file on this machine) or `postgres`
    /// (several instances share one database, SPEC 13).
    #[serde(default)]
    pub backend: StateBackend,
    /// The SQLite database (sqlite only). Default `/var/lib/cen-poller/state.db`.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// postgres only: a file holding the connection string (libpq `key=value` or
    /// `postgres://` URL; `sslmode` and `sslrootcert` as libpq). Preferred over `url`: it
    /// usually holds a password. Exactly one of the two.
    pub url_file: Option<PathBuf>,
    /// postgres only: the connection string itself.
    pub url: Option<String>,
    /// postgres only: the schema holding cen-poller's tables, created when missing. Default
    /// `cen_poller`.
    #[serde(default = "default_state_schema")]
    pub schema: String,
    /// This instance's name in a cluster (`status`, leadership). Default: the host name.
    pub instance: Option<String>,
    /// postgres only: the poller's leadership lapses this long after its last renewal; it
    /// is renewed every third of it. Another instance polls within this plus
    /// `poll.interval` after the leader dies. Default `15s`.
    #[serde(default = "d15s")]
    pub leader_lease: Dur,
    /// How long ids stay in the seen set and notifications stay replayable. Must exceed
    /// the API's 7-day retention, or a re-polled old notification would count as new.
    /// Default `14d`.
    #[serde(default = "d14d")]
    pub keep: Dur,
}

/// `[push]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Address to listen on. Default `0.0.0.0:8443`.
    #[serde(default = "default_push_listen")]
    pub listen: SocketAddr,
    /// The path Mastercard posts to. Default `/notifications`.
    #[serde(default = "default_push_path")]
    pub path: String,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA that client certificates must chain to (Mastercard's: DigiCert Assured ID Root G2).
    pub client_ca: PathBuf,
    /// Subject CN or DNS SAN of accepted client certificates (`*.` wildcards allowed).
    /// Default: any certificate that chains to `client_ca` — set it, because every DigiCert
    /// customer's client certificate chains to the same root.
    #[serde(default)]
    pub allowed_client_names: Vec<String>,
    /// Largest request body. Default `10MiB`.
    #[serde(default = "default_max_body")]
    pub max_body: Size,
    /// `[push.limits]`: connection deadlines and cap.
    #[serde(default)]
    pub limits: ListenerLimits,
}

/// `[vgs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VgsConfig {
    /// Address to listen on. Default `0.0.0.0:8444`.
    #[serde(default = "default_vgs_listen")]
    pub listen: SocketAddr,
    /// Default `/webhooks/vgs/account-updater`.
    #[serde(default = "default_vgs_path")]
    pub path: String,
    /// TLS certificate chain (PEM); plain HTTP when absent (behind a TLS proxy).
    pub cert: Option<PathBuf>,
    /// TLS key (PEM), with `cert`.
    pub key: Option<PathBuf>,
    /// File holding the webhook signing secret (its trimmed bytes are the HMAC key).
    pub signing_secret_file: Option<PathBuf>,
    /// More secret files, accepted too (for rotation).
    #[serde(default)]
    pub extra_signing_secret_files: Vec<PathBuf>,
    /// `enforce` (default) refuses bad signatures; `log-only` accepts and logs them, to
    /// confirm the scheme from a first real delivery.
    #[serde(default)]
    pub verify: VgsVerify,
    /// Largest request body. Default `1MiB`.
    #[serde(default = "default_vgs_max_body")]
    pub max_body: Size,
    /// `[vgs.limits]`: connection deadlines and cap.
    #[serde(default)]
    pub limits: ListenerLimits,
}

/// `vgs.verify`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VgsVerify {
    #[default]
    Enforce,
    LogOnly,
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `/metrics`, `/healthz`, `/readyz`. Default `127.0.0.1:9464` (loopback: the metrics
    /// are not secret but need not be public).
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// `[admin.limits]`: connection deadlines and cap.
    #[serde(default)]
    pub limits: ListenerLimits,
}

/// `[audit]` (SPEC 12)
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// When the daemon runs a repairing audit: a cron expression with seconds, in UTC
    /// (`sec min hour day-of-month month day-of-week`). Default `0 17 3 * * *`, daily at
    /// 03:17:00 UTC, a quiet hour away from the full hour other jobs crowd; `""` turns the
    /// scheduled audit off.
    #[serde(default = "default_audit_schedule")]
    pub schedule: String,
    /// How far back each scheduled audit (and `audit` without RANGE) looks. Default `7d`,
    /// the API's whole retention: whatever the sliding window missed is still fetchable.
    #[serde(default = "d7d")]
    pub range: Dur,
}

fn default_audit_schedule() -> String {
    "0 17 3 * * *".into()
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { schedule: default_audit_schedule(), range: d7d() }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json` (one object per line, for journald or a collector).
    #[serde(default)]
    pub format: LogFormat,
    /// `error`, `warn`, `info` (default), `debug`, `trace`, or a tracing filter directive.
    #[serde(default = "default_log_level")]
    pub level: String,
}

/// `[delivery]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// First retry delay after a failed delivery. Default `1s`.
    #[serde(default = "d1s")]
    pub backoff_initial: Dur,
    /// Longest retry delay. Default `10m`.
    #[serde(default = "d10m")]
    pub backoff_max: Dur,
    /// Attempts before the notification becomes a dead letter for that sink. Default 50.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Age after which an undelivered notification becomes a dead letter. Default `7d`.
    #[serde(default = "d7d")]
    pub max_age: Dur,
}

/// VGS event names a sink may filter on: the Card Management Platform events the VGS
/// notification pages list (Account Updater, network token, 3DS), and the `au_card.*` names
/// of the earlier Account Updater API. An event with another name (a variant such as
/// `cmp_au_card.enrollment.failed`) is still stored and delivered, and counted in
/// `cen_notifications_unknown_event_total`; only a sink filter cannot name it.
pub const VGS_EVENTS: [&str; 20] = [
    "cmp_au_card.updated",
    "cmp_au_card.expired",
    "cmp_au_card.closed",
    "cmp_au_card.non_participating",
    "cmp_au_card.contact_cardholder_advice",
    "cmp_au_card.unknown",
    "cmp_au_card.enrolled",
    "cmp_au_card.opt_out",
    "cmp_au_card.enrollment_failed",
    "au_card.updated",
    "au_card.expired",
    "au_card.closed",
    "au_card.non_participating",
    "au_card.contact_cardholder_advice",
    "au_card.unknown",
    "au_card.enrolled",
    "au_card.opt_out",
    "cmp_network_token.updated",
    "cmp_threeds.device_fingerprint",
    "cmp_threeds.challenge_result",
];

/// The push statuses the API filters on.
pub const PUSH_STATUSES: [&str; 4] = ["FAILED", "PENDING", "DELIVERED", "NOT_APPLICABLE"];

fn push_statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    for s in &v {
        if !PUSH_STATUSES.contains(&s.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "unknown push status {s:?}; expected one of {PUSH_STATUSES:?}"
            )));
        }
    }
    Ok(v)
}

fn default_base_url() -> String {
    "https://api.mastercard.com/commercial-event-notifications".into()
}
fn default_api_timeout() -> Dur {
    Dur::secs(30)
}
fn default_page_size() -> u32 {
    200
}
/// `state.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// One SQLite file on this machine.
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by every instance of a cluster.
    Postgres,
}

fn default_state_schema() -> String {
    "cen_poller".into()
}

fn d15s() -> Dur {
    Dur::secs(15)
}

fn default_state_path() -> PathBuf {
    "/var/lib/cen-poller/state.db".into()
}
fn default_push_listen() -> SocketAddr {
    ([0, 0, 0, 0], 8443).into()
}
fn default_push_path() -> String {
    "/notifications".into()
}
fn default_max_body() -> Size {
    Size(10 << 20)
}
fn default_vgs_listen() -> SocketAddr {
    ([0, 0, 0, 0], 8444).into()
}
fn default_vgs_path() -> String {
    "/webhooks/vgs/account-updater".into()
}
fn default_vgs_max_body() -> Size {
    Size(1 << 20)
}
fn default_admin_listen() -> SocketAddr {
    ([127, 0, 0, 1], 9464).into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_max_attempts() -> u32 {
    50
}
fn d1s() -> Dur {
    Dur::secs(1)
}
fn d60s() -> Dur {
    Dur::secs(60)
}
fn d10m() -> Dur {
    Dur::secs(600)
}
fn d15m() -> Dur {
    Dur::secs(900)
}
fn d1h() -> Dur {
    Dur::secs(3600)
}
fn d7d() -> Dur {
    Dur::secs(7 * 86_400)
}
fn d14d() -> Dur {
    Dur::secs(14 * 86_400)
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: d60s(),
            lookback: d15m(),
            settle: d60s(),
            page_size: default_page_size(),
            max_window: d1h(),
            first_start: FirstStart::default(),
        }
    }
}
impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::default(),
            path: default_state_path(),
            url_file: None,
            url: None,
            schema: default_state_schema(),
            instance: None,
            leader_lease: d15s(),
            keep: d14d(),
        }
    }
}
impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: default_admin_listen(), limits: ListenerLimits::default() }
    }
}
impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::default(), level: default_log_level() }
    }
}
impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig { backoff_initial: d1s(), backoff_max: d10m(), max_attempts: 50, max_age: d7d() }
    }
}

/// The secrets and keys a configuration names, loaded.
pub struct Secrets {
    pub signer: Signer,
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text` (read from `path`, which names it in errors and anchors
    /// relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        // Absolute, so relative paths in the file resolve the same whatever the working
        // directory of a later command, and messages show where things are.
        config.path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        config.credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        config.validate(text)?;
        Ok(config)
    }

    /// Cross-field checks serde cannot express; errors carry the key's line.
    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: self.path.clone(),
            key: key.to_owned(),
            line: locate(text, key),
            message,
        };
        let api = &self.api;
        if !(api.base_url.starts_with("https://") || api.base_url.starts_with("http://")) {
            return Err(invalid("api.base_url", "must start with https:// (or http:// for the simulator)".into()));
        }
        if api.base_url.contains('?') || api.base_url.contains('#') {
            return Err(invalid("api.base_url", "must not contain a query or fragment".into()));
        }
        match (&api.consumer_key, &api.consumer_key_file) {
            (Some(_), Some(_)) => {
                return Err(invalid("api.consumer_key", "give consumer_key or consumer_key_file, not both".into()));
            }
            (None, None) => {
                return Err(invalid("api", "consumer_key_file (or consumer_key) is required".into()));
            }
            _ => {}
        }
        let st = &self.state;
        match (st.backend, &st.url_file, &st.url) {
            (StateBackend::Sqlite, None, None) => {}
            (StateBackend::Sqlite, _, _) => {
                return Err(invalid(
                    "state.url",
                    "url and url_file are for backend = \"postgres\"; remove them or set state.backend".into(),
                ));
            }
            (StateBackend::Postgres, Some(_), Some(_)) => {
                return Err(invalid("state.url", "give url_file or url, not both".into()));
            }
            (StateBackend::Postgres, None, None) => {
                return Err(invalid(
                    "state",
                    "backend = \"postgres\" needs url_file (or url): the connection string".into(),
                ));
            }
            (StateBackend::Postgres, _, _) => {}
        }
        if st.schema.is_empty()
            || st.schema.len() > 63
            || !st.schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            || !st.schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid(
                "state.schema",
                "must be a plain lower-case SQL name (a-z, 0-9, _; at most 63)".into(),
            ));
        }
        if let Some(name) = &st.instance
            && (name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control()))
        {
            return Err(invalid("state.instance", "must be 1 to 128 printable characters".into()));
        }
        if st.leader_lease.0 < Duration::from_secs(3) {
            return Err(invalid("state.leader_lease", "must be at least 3s (it is renewed every third of it)".into()));
        }
        let p = &self.poll;
        if p.interval.0.is_zero() {
            return Err(invalid("poll.interval", "must be more than 0s".into()));
        }
        if p.page_size == 0 || p.page_size > 5000 {
            return Err(invalid("poll.page_size", "must be between 1 and 5000".into()));
        }
        if p.max_window.0 < Duration::from_secs(1) {
            return Err(invalid("poll.max_window", "must be at least 1s".into()));
        }
        if p.lookback.delta() >= crate::cen::RETENTION {
            return Err(invalid("poll.lookback", "must be shorter than the API's 7-day retention".into()));
        }
        if let Err(e) = check_schedule(&self.audit.schedule) {
            return Err(invalid("audit.schedule", e.to_string()));
        }
        if self.audit.range.0.is_zero() || self.audit.range.delta() > crate::cen::RETENTION {
            return Err(invalid("audit.range", "must be more than 0s and at most the API's 7-day retention".into()));
        }
        if self.state.keep.delta() < crate::cen::RETENTION + p.lookback.delta() {
            return Err(invalid(
                "state.keep",
                format!(
                    "must be at least the API's retention (7d) plus poll.lookback ({}): an id forgotten while the API still serves it would be delivered again",
                    p.lookback
                ),
            ));
        }
        if self.delivery.backoff_initial > self.delivery.backoff_max {
            return Err(invalid("delivery.backoff_initial", "must not exceed delivery.backoff_max".into()));
        }
        if self.delivery.max_attempts == 0 {
            return Err(invalid("delivery.max_attempts", "must be at least 1".into()));
        }
        if let Some(push) = &self.push
            && !push.path.starts_with('/')
        {
            return Err(invalid("push.path", "must start with /".into()));
        }
        if let Some(vgs) = &self.vgs {
            if !vgs.path.starts_with('/') {
                return Err(invalid("vgs.path", "must start with /".into()));
            }
            if vgs.cert.is_some() != vgs.key.is_some() {
                return Err(invalid("vgs.cert", "give both vgs.cert and vgs.key, or neither".into()));
            }
            if vgs.signing_secret_file.is_none() && vgs.verify == VgsVerify::Enforce {
                return Err(invalid("vgs.signing_secret_file", "is required when vgs.verify = \"enforce\"".into()));
            }
        }
        let listeners = [
            self.push.as_ref().map(|p| ("push", &p.limits)),
            self.vgs.as_ref().map(|v| ("vgs", &v.limits)),
            Some(("admin", &self.admin.limits)),
        ];
        for (section, limits) in listeners.into_iter().flatten() {
            limits.check(section).map_err(|(key, message)| invalid(&key, message))?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let key = |k: &str| format!("sinks[{i}].{k}");
            let name = sink.name();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(invalid(&key("name"), format!("{name:?}: use letters, digits, - and _")));
            }
            if !names.insert(name) {
                return Err(invalid(&key("name"), format!("sink name {name:?} is used twice")));
            }
            for s in sink.subjects() {
                if !CEN_SUBJECTS.contains(&s.as_str()) && !VGS_EVENTS.contains(&s.as_str()) {
                    return Err(invalid(
                        &key("subjects"),
                        format!("unknown subject {s:?}; expected one of {CEN_SUBJECTS:?} or a VGS event name"),
                    ));
                }
            }
            sink.spec().validate().map_err(|(k, message)| invalid(&key(k), message))?;
        }
        crate::subscriptions::validate(&self.subscriptions).map_err(|(key, message)| invalid(&key, message))?;
        Ok(())
    }

    /// Resolves a path from the file: absolute as is; relative in `$CREDENTIALS_DIRECTORY`
    /// when that is set and holds it, else next to the config file.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        if let Some(dir) = &self.credentials_dir {
            let candidate = dir.join(p);
            if candidate.exists() {
                return candidate;
            }
        }
        self.path.parent().unwrap_or(Path::new(".")).join(p)
    }

    /// Reads a secret file: its contents, trimmed; an empty one is an error.
    pub fn read_secret(&self, key: &str, p: &Path) -> Result<String, ConfigError> {
        self.secret_file(key, p).map_err(|e| match e {
            SecretError::Read { key, path, source } => ConfigError::Secret { key, path, source },
            SecretError::Empty { key, path } => ConfigError::EmptySecret { key, path },
        })
    }

    /// [`Config::read_secret`], with the error a sink entry reports.
    fn secret_file(&self, key: &str, p: &Path) -> Result<String, SecretError> {
        let path = self.resolve(p);
        let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Read {
            key: key.into(),
            path: path.clone(),
            source,
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty { key: key.into(), path });
        }
        Ok(text.to_owned())
    }

    /// Builds the API client of `[api]` (loads the signing key).
    pub fn api_client(&self) -> Result<crate::cen::client::Client, ApiClientError> {
        let secrets = self.load_secrets()?;
        let extra_ca_pem = match &self.api.ca_file {
            Some(f) => {
                let path = self.resolve(f);
                Some(std::fs::read(&path).map_err(|source| ApiClientError::CaFile { path, source })?)
            }
            None => None,
        };
        crate::cen::client::Client::new(
            std::sync::Arc::new(secrets.signer),
            crate::cen::client::ClientOptions {
                base_url: self.api.base_url.clone(),
                timeout: self.api.timeout.0,
                extra_ca_pem,
                subscriptions: self.api.subscriptions.clone(),
                push_status: self.api.push_status.clone(),
            },
        )
        .map_err(ApiClientError::Client)
    }

    /// Loads every key and secret the API section names.
    pub fn load_secrets(&self) -> Result<Secrets, ConfigError> {
        let api = &self.api;
        let consumer_key = match (&api.consumer_key, &api.consumer_key_file) {
            (Some(k), _) => k.clone(),
            (None, Some(f)) => self.read_secret("api.consumer_key_file", f)?,
            (None, None) => unreachable!("validate() requires one of them"),
        };
        let password = api
            .signing_key_password_file
            .as_ref()
            .map(|f| self.read_secret("api.signing_key_password_file", f))
            .transpose()?;
        let key =
            SigningKey::load(&self.resolve(&api.signing_key), password.as_deref(), api.signing_key_alias.as_deref())
                .map_err(|source| ConfigError::Key { key: "api.signing_key".into(), source })?;
        Ok(Secrets { signer: Signer::new(consumer_key, key) })
    }

    /// Checks that every other file the configuration names can be read (certificates,
    /// secrets of the endpoints and sinks), for `check-config`.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let readable = |key: &str, p: &Path| -> Result<(), ConfigError> {
            let path = self.resolve(p);
            std::fs::metadata(&path)
                .and_then(|_| std::fs::File::open(&path).map(drop))
                .map_err(|source| ConfigError::Secret { key: key.into(), path, source })
        };
        if let Some(ca) = &self.api.ca_file {
            readable("api.ca_file", ca)?;
        }
        if let Some(push) = &self.push {
            readable("push.cert", &push.cert)?;
            readable("push.key", &push.key)?;
            readable("push.client_ca", &push.client_ca)?;
        }
        if let Some(vgs) = &self.vgs {
            if let (Some(c), Some(k)) = (&vgs.cert, &vgs.key) {
                readable("vgs.cert", c)?;
                readable("vgs.key", k)?;
            }
            if let Some(f) = &vgs.signing_secret_file {
                self.read_secret("vgs.signing_secret_file", f)?;
            }
            for f in &vgs.extra_signing_secret_files {
                self.read_secret("vgs.extra_signing_secret_files", f)?;
            }
        }
        Ok(())
    }
}

impl From<&DeliveryConfig> for crate::sinks::dispatcher::DeliverySettings {
    fn from(d: &DeliveryConfig) -> Self {
        crate::sinks::dispatcher::DeliverySettings {
            backoff_initial: d.backoff_initial.0,
            backoff_max: d.backoff_max.0,
            max_attempts: d.max_attempts,
            max_age: d.max_age.0,
        }
    }
}

/// `audit.schedule` is not a cron expression (the text as written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a cron expression with seconds in UTC (sec min hour day-of-month month day-of-week, e.g. \"0 17 3 * * *\"); \"\" turns the scheduled audit off"
)]
pub struct ScheduleError(pub String);

/// Checks `audit.schedule`: empty (off) or a cron expression with seconds.
pub fn check_schedule(expr: &str) -> Result<(), ScheduleError> {
    if expr.trim().is_empty() {
        return Ok(());
    }
    tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {}))
        .map(drop)
        .map_err(|_| ScheduleError(expr.to_owned()))
}

/// The sinks read their files the way the rest of the configuration does.
impl crate::sinks::Files for Config {
    fn resolve(&self, path: &Path) -> PathBuf {
        Config::resolve(self, path)
    }

    fn read_secret(&self, key: &str, path: &Path) -> Result<String, SecretError> {
        self.secret_file(key, path)
    }
}

/// The 1-based line of a dotted key (`poll.lookback`, `sinks[2].url`) in `text`, for error
/// messages. `None` when the key is not written in the file (a default was used).
pub fn locate(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut span = None;
    let parts: Vec<&str> = key.split('.').collect();
    for (n, part) in parts.iter().enumerate() {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*part, None),
        };
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        span = Some(k.span());
        let mut value = v;
        if let Some(i) = index {
            let DeValue::Array(items) = value.get_ref() else {
                break;
            };
            value = items.get(i)?;
            span = Some(value.span());
        }
        match value.get_ref() {
            DeValue::Table(t) if n + 1 < parts.len() => table = t,
            _ => break,
        }
    }
    span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[api]
consumer_key = "ck"
signing_key = "key.pem"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/cen-poller/config.toml"))
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.api.base_url, "https://api.mastercard.com/commercial-event-notifications");
        assert_eq!(c.api.timeout, Dur::secs(30));
        assert_eq!(c.poll.interval, Dur::secs(60));
        assert_eq!(c.poll.lookback, Dur::secs(900));
        assert_eq!(c.poll.settle, Dur::secs(60));
        assert_eq!(c.poll.page_size, 200);
        assert_eq!(c.poll.max_window, Dur::secs(3600));
        assert_eq!(c.poll.first_start, FirstStart::Lookback);
        assert_eq!(c.state.path, Path::new("/var/lib/cen-poller/state.db"));
        assert_eq!(c.state.keep, Dur::secs(14 * 86400));
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.delivery.max_attempts, 50);
        assert!(c.push.is_none() && c.vgs.is_none() && c.sinks.is_empty());
    }

    #[test]
    fn the_spec_example_parses() {
        let text = r#"
[api]
base_url = "https://sandbox.api.mastercard.com/commercial-event-notifications"
consumer_key_file = "consumer-key"
signing_key = "signing-key.p12"
signing_key_password_file = "keystore-password"
signing_key_alias = "keyalias"
timeout = "30s"
subscriptions = []
push_status = ["FAILED"]

[poll]
interval = "60s"
lookback = "15m"
settle = "60s"
page_size = 200
max_window = "1h"
first_start = "2026-11-20T00:00:00Z"

[state]
path = "/var/lib/cen-poller/state.db"
keep = "14d"

[push]
listen = "0.0.0.0:8443"
path = "/notifications"
cert = "server-chain.pem"
key = "server-key.pem"
client_ca = "/usr/share/cen-poller/certs/digicert-assured-id-root-g2.pem"
allowed_client_names = ["push.mastercard.com"]
max_body = "10MiB"

[vgs]
listen = "0.0.0.0:8444"
path = "/webhooks/vgs/account-updater"
signing_secret_file = "vgs-secret"

[admin]
listen = "127.0.0.1:9464"

[log]
format = "json"
level = "info"

[delivery]
backoff_initial = "1s"
backoff_max = "10m"
max_attempts = 50
max_age = "7d"

[[sinks]]
name = "archive"
type = "file"
path = "/var/lib/cen-poller/notifications.jsonl"
subjects = ["CLEARING", "BPC_CLEARING"]

[[sinks]]
name = "erp"
type = "http"
url = "https://erp.internal/hooks/cen"
secret_file = "erp-webhook-secret"
timeout = "10s"

[[sinks]]
name = "handler"
type = "command"
command = ["/usr/local/bin/handle-notification", "--stdin"]

[[sinks]]
name = "ledger"
type = "postgres"
url_file = "ledger-dsn"
table = "cen_notifications"

[[sinks]]
name = "bus"
type = "nats"
url = "nats://127.0.0.1:4222"
stream = "CEN"
subject = "cen.{subject}"
"#;
        let c = parse(text).unwrap();
        assert_eq!(c.sinks.len(), 5);
        assert_eq!(c.sinks[0].subjects(), ["CLEARING", "BPC_CLEARING"]);
        assert_eq!(c.push.as_ref().unwrap().max_body, Size(10 << 20));
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(matches!(c.poll.first_start, FirstStart::At(_)));
        assert!(matches!(&c.sinks[4], SinkConfig::Nats(nats) if nats.stream == "CEN"));
    }

    /// An error's text, which must name the key and its line.
    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_bad_audit_schedule_or_range_names_key_and_line() {
        let e = err(&format!("{MINIMAL}\n[audit]\nschedule = \"17 3 * * *\"\n"));
        assert!(e.contains("audit.schedule") && e.contains(":7:") && e.contains("cron"), "{e}");
        let e = err(&format!("{MINIMAL}\n[audit]\nrange = \"8d\"\n"));
        assert!(e.contains("audit.range") && e.contains(":7:"), "{e}");
        let off = parse(&format!("{MINIMAL}\n[audit]\nschedule = \"\"\n")).unwrap();
        assert_eq!(off.audit.schedule, "");
        let default = parse(MINIMAL).unwrap();
        assert_eq!((default.audit.schedule.as_str(), default.audit.range), ("0 17 3 * * *", Dur::secs(7 * 86_400)));
    }

    #[test]
    fn unknown_keys_are_errors_naming_key_and_line() {
        let e = err(&format!("{MINIMAL}\n[poll]\nintervall = \"60s\"\n"));
        assert!(e.contains("intervall") && e.contains("line 7"), "{e}");
        let e = err(&format!("{MINIMAL}\n[[sinks]]\nname = \"a\"\ntype = \"file\"\npath = \"x\"\ncolour = 1\n"));
        assert!(e.contains("colour") && e.contains("line"), "{e}");
        let e = err(&format!("{MINIMAL}\n[[sinks]]\nname = \"a\"\ntype = \"kafka\"\n"));
        assert!(e.contains("kafka"), "{e}");
        let e = err(&format!("{MINIMAL}\n[surprise]\n"));
        assert!(e.contains("surprise"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let e = err(&format!("{MINIMAL}\n[poll]\nlookback = \"15 minutes\"\n"));
        assert!(e.contains("line 7") && e.contains("lookback") && e.contains("invalid duration"), "{e}");
        let e = err(&format!("{MINIMAL}\n[poll]\nfirst_start = \"yesterday\"\n"));
        assert!(e.contains("line 7") && e.contains("first_start"), "{e}");
        let e = err(&format!("{MINIMAL}\n[state]\nkeep = \"3d\"\n"));
        assert!(e.contains(":7:") && e.contains("state.keep"), "{e}");
        let e = err(&format!(
            "{MINIMAL}\n[[sinks]]\nname = \"a\"\ntype = \"file\"\npath = \"x\"\n\n[[sinks]]\nname = \"a\"\ntype = \"file\"\npath = \"y\"\n"
        ));
        assert!(e.contains(":12:") && e.contains("sinks[1].name") && e.contains("twice"), "{e}");
        let e = err(&format!(
            "{MINIMAL}\n[[sinks]]\nname = \"a\"\ntype = \"file\"\npath = \"x\"\nsubjects = [\"CLEARNG\"]\n"
        ));
        assert!(e.contains(":10:") && e.contains("CLEARNG"), "{e}");
        let e = err("[api]\nsigning_key = \"k\"\n");
        assert!(e.contains("consumer_key_file"), "{e}");
        let e = err(&format!("{MINIMAL}\npush_status = [\"LOST\"]\n"));
        assert!(e.contains("LOST"), "{e}");
        let e = err(&format!("{MINIMAL}\n[admin]\nlisten = \"localhost\"\n"));
        assert!(e.contains("line 7"), "{e}");
    }

    #[test]
    fn secrets_resolve_in_the_credentials_directory_then_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(dir.path().join("a"), "beside\n").unwrap();
        std::fs::write(creds.join("b"), " from-credentials \n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let mut c = parse(MINIMAL).unwrap();
        c.path = dir.path().join("config.toml");
        c.credentials_dir = Some(creds.clone());
        assert_eq!(c.read_secret("k", Path::new("a")).unwrap(), "beside");
        assert_eq!(c.read_secret("k", Path::new("b")).unwrap(), "from-credentials");
        c.credentials_dir = None;
        assert!(c.read_secret("k", Path::new("b")).is_err());
        let e = c.read_secret("api.consumer_key_file", Path::new("missing")).unwrap_err().to_string();
        assert!(e.contains("api.consumer_key_file") && e.contains("missing"), "{e}");
        assert!(matches!(c.read_secret("k", Path::new("empty")), Err(ConfigError::EmptySecret { .. })));
    }

    #[test]
    fn locate_finds_nested_and_array_keys() {
        let text = "[api]\nx = 1\n\n[[sinks]]\nname = \"a\"\n[[sinks]]\nname = \"b\"\nurl = \"u\"\n";
        assert_eq!(locate(text, "api.x"), Some(2));
        assert_eq!(locate(text, "sinks[1].url"), Some(8));
        assert_eq!(locate(text, "sinks[0].name"), Some(5));
        assert_eq!(locate(text, "poll.interval"), None);
    }
}
