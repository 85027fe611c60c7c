//! `cen-poller subscriptions …` and `cen-poller fieldmappings` (SPEC 11): the API's
//! subscription calls with the configuration's credentials, a readable table by default and
//! `--json` for scripts.
//!
//! Exit status: 0 done (and `plan` in sync); 4 `plan` with changes pending; 2 bad usage or
//! configuration — no `[[subscriptions]]` for `plan`/`apply`, a field the API does not list,
//! a `--file` that is not a Subscription; 1 the API refused or could not be reached (the
//! message carries the gateway's `ReasonCode` and `Description`). `show`, `update` and
//! `delete` take a name or an id: a name the API does not list is tried as an id, so a
//! string that is neither ends in the API's `404`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::CliError;
use crate::cen::client::{ApiError, Client};
use crate::cen::subscriptions::{Subscription, SubscriptionDetails};
use crate::config::Config;
use crate::output::write_stdout;

use crate::subscriptions::plan::{self, Change};
use crate::subscriptions::render::{details_text, mappings_table, table};

/// `subscriptions` actions.
#[derive(Debug, clap::Subcommand)]
pub enum SubscriptionsAction {
    /// Every subscription: name, subject, active, id, filter.
    List {
        /// Machine-readable output (the API's SubscriptionDetails objects).
        #[arg(long)]
        json: bool,
    },
    /// One subscription, by name (or id).
    Show {
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Create a subscription from FILE, a Subscription JSON object as the API takes it.
    Create {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Replace the subscription NAME (or id) with FILE, a Subscription JSON object.
    Update {
        name: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete the subscription NAME (or id).
    Delete { name: String },
    /// What `apply` would change, one line each; exit 0 in sync, 4 changes pending.
    Plan {
        /// Also delete subscriptions the configuration does not declare.
        #[arg(long)]
        prune: bool,
    },
    /// Make the API's subscriptions match the configuration's `[[subscriptions]]`.
    Apply {
        /// Also delete subscriptions the configuration does not declare.
        #[arg(long)]
        prune: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
}

fn emit(text: &str) -> Result<(), CliError> {
    write_stdout(text).map(drop).map_err(CliError::runtime)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    format!("{}\n", serde_json::to_string_pretty(value).expect("API types serialise"))
}

fn api(what: &str) -> impl FnOnce(ApiError) -> CliError + '_ {
    move |e| CliError::Runtime(format!("{what}: {e}"))
}

fn client(config: &Config) -> Result<Client, CliError> {
    config.api_client().map_err(CliError::usage)
}

/// `cen-poller subscriptions ACTION`.
pub fn run(config_path: &Path, action: &SubscriptionsAction) -> Result<ExitCode, CliError> {
    let config = Config::load(config_path)?;
    let client = client(&config)?;
    runtime()?.block_on(async {
        match action {
            SubscriptionsAction::List { json: as_json } => {
                let list = client.list_subscriptions().await.map_err(api("GET /subscriptions"))?;
                emit(&if *as_json { json(&list) } else { table(&list) })?;
                Ok(ExitCode::SUCCESS)
            }
            SubscriptionsAction::Show { name, json: as_json } => {
                let s = resolve(&client, name).await?;
                emit(&if *as_json { json(&s) } else { details_text(&s) })?;
                Ok(ExitCode::SUCCESS)
            }
            SubscriptionsAction::Create { file } => {
                let request = read_request(file)?;
                let s = client.create_subscription(&request).await.map_err(api("POST /subscriptions"))?;
                emit(&format!("created {} (id {})\n", s.name, s.id.as_deref().unwrap_or("?")))?;
                Ok(ExitCode::SUCCESS)
            }
            SubscriptionsAction::Update { name, file } => {
                let request = read_request(file)?;
                let id = resolve(&client, name).await?.id.unwrap_or_else(|| name.clone());
                let s = client.update_subscription(&id, &request).await.map_err(api("PUT /subscriptions/{id}"))?;
                emit(&format!("updated {} (id {id})\n", s.name))?;
                Ok(ExitCode::SUCCESS)
            }
            SubscriptionsAction::Delete { name } => {
                let s = resolve(&client, name).await?;
                let id = s.id.clone().unwrap_or_else(|| name.clone());
                client.delete_subscription(&id).await.map_err(api("DELETE /subscriptions/{id}"))?;
                emit(&format!("deleted {} (id {id})\n", s.name))?;
                Ok(ExitCode::SUCCESS)
            }
            SubscriptionsAction::Plan { prune } => {
                let changes = changes(&config, &client, *prune).await?;
                let mut out: String = changes.iter().map(|c| format!("{}\n", c.line())).collect();
                out.push_str(&plan::summary(&changes));
                out.push('\n');
                emit(&out)?;
                Ok(if changes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(4) })
            }
            SubscriptionsAction::Apply { prune } => {
                let changes = changes(&config, &client, *prune).await?;
                for (n, change) in changes.iter().enumerate() {
                    apply_one(&client, change).await.map_err(|e| {
                        CliError::Runtime(format!(
                            "{}: {e} ({n} of {} changes were made before it; `cen-poller subscriptions plan` shows what remains)",
                            change.line(),
                            changes.len()
                        ))
                    })?;
                    emit(&format!("{}\n", change.line()))?;
                }
                emit(&format!("{}\n", plan::summary(&changes).replacen("plan:", "applied:", 1)))?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// `cen-poller fieldmappings [--subject S] [--json]`.
pub fn fieldmappings(config_path: &Path, subject: Option<&str>, as_json: bool) -> Result<ExitCode, CliError> {
    let config = Config::load(config_path)?;
    if let Some(s) = subject
        && !crate::cen::SUBJECTS.contains(&s)
    {
        return Err(CliError::Usage(format!("--subject {s:?} is not one of {:?}", crate::cen::SUBJECTS)));
    }
    let client = client(&config)?;
    let mut list = runtime()?.block_on(client.field_mappings()).map_err(api("GET /fieldmappings"))?;
    list.retain(|m| subject.is_none_or(|s| m.subject_type.as_deref() == Some(s)));
    emit(&if as_json { json(&list) } else { mappings_table(&list) })?;
    Ok(ExitCode::SUCCESS)
}

/// The plan for `config` against the API: refused (exit 2) when the configuration declares
/// nothing or filters on a field the API does not list.
async fn changes(config: &Config, client: &Client, prune: bool) -> Result<Vec<Change>, CliError> {
    if config.subscriptions.is_empty() {
        return Err(CliError::Usage(format!(
            "{} declares no [[subscriptions]]: plan and apply compare the API with them (and --prune would delete every subscription); declare them first (README, \"Subscriptions\")",
            config.path.display()
        )));
    }
    let mappings = client.field_mappings().await.map_err(api("GET /fieldmappings"))?;
    plan::check_fields(&config.subscriptions, &mappings).map_err(CliError::usage)?;
    let actual = client.list_subscriptions().await.map_err(api("GET /subscriptions"))?;
    Ok(plan::plan(&config.subscriptions, &actual, prune))
}

async fn apply_one(client: &Client, change: &Change) -> Result<(), ApiError> {
    match change {
        Change::Create { desired } => client.create_subscription(desired).await.map(drop),
        Change::Update { id, desired, .. } => client.update_subscription(id, desired).await.map(drop),
        Change::Replace { id, desired, .. } => {
            client.delete_subscription(id).await?;
            client.create_subscription(desired).await.map(drop)
        }
        Change::Delete { id, .. } => client.delete_subscription(id).await,
    }
}

/// The subscription called `name`, or else the one with id `name` (the API's 404 when
/// there is none).
async fn resolve(client: &Client, name: &str) -> Result<SubscriptionDetails, CliError> {
    let list = client.list_subscriptions().await.map_err(api("GET /subscriptions"))?;
    if let Some(s) =
        list.iter().find(|s| s.name == name).or_else(|| list.iter().find(|s| s.id.as_deref() == Some(name)))
    {
        return Ok(s.clone());
    }
    client.get_subscription(name).await.map_err(|e| {
        CliError::Runtime(format!(
            "no subscription is named {name:?}, and as an id: {e}; `cen-poller subscriptions list` shows them"
        ))
    })
}

fn read_request(file: &Path) -> Result<Subscription, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("cannot read --file {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "--file {}: not a Subscription object ({e}); it needs name, subjectType and active, and may have specifications",
            file.display()
        ))
    })
}
