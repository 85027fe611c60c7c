//! The simulator's subscription calls and field mappings (SPEC 9 and 11, OpenAPI 1.2.0):
//! `GET`/`POST …/subscriptions`, `GET`/`PUT`/`DELETE …/subscriptions/{id}` and
//! `GET …/fieldmappings`.
//!
//! Invariants:
//! - lists are bare arrays; `GET /subscriptions` honours `offset` (default 0), `limit`
//!   (default 25) and `sort` (`name`, `-name`, `id`, `-id`, `subjectType`, `-subjectType`;
//!   default `name`);
//! - requests take `Subscription` (specifications name their field by `fieldMappingName`);
//!   answers are `SubscriptionDetails` (the field comes back as a `fieldMapping` object);
//! - `POST` answers `201` with `Location`, `PUT` `200`, `DELETE` `204`, an unknown id `404`,
//!   an invalid or duplicate name, an unknown subject or field `400`, all errors in the
//!   envelope of SPEC 10;
//! - a simulator starts with one active subscription per subject, named as the generated
//!   stream files its notifications ([`subscription_name`]). The stream generates a
//!   subject's notifications only while the subscription of that name exists, is active
//!   and has that subject: every change here updates the data's gaps (see
//!   `data::Gaps`). Other subscriptions are kept and listed, but the generated
//!   stream has no notifications for them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::generate::{SUBJECTS, hash3, subscription_name};
use super::http::{API_SOURCE, decode_component, error_body, respond};
use super::{Simulator, lock};

/// The most a request body may hold.
const MAX_BODY: usize = 1 << 20;

/// Which call a path names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    /// `…/subscriptions`
    Collection,
    /// `…/subscriptions/{id}`
    One(String),
    /// `…/fieldmappings`
    FieldMappings,
}

/// The route of `path`, when it is one of the subscription calls.
pub(crate) fn route(path: &str) -> Option<Route> {
    let path = path.trim_end_matches('/');
    if path.ends_with("/subscriptions") {
        return Some(Route::Collection);
    }
    if path.ends_with("/fieldmappings") {
        return Some(Route::FieldMappings);
    }
    let (head, id) = path.rsplit_once('/')?;
    (head.ends_with("/subscriptions") && !id.is_empty()).then(|| Route::One(id.to_owned()))
}

/// How many calls of each kind the simulator answered successfully (for tests that check
/// that a command changed nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionCalls {
    pub list: u64,
    pub get: u64,
    pub create: u64,
    pub update: u64,
    pub delete: u64,
    pub field_mappings: u64,
}

impl SubscriptionCalls {
    /// Calls that changed something.
    pub fn changes(&self) -> u64 {
        self.create + self.update + self.delete
    }
}

/// One subscription as stored.
#[derive(Debug, Clone)]
pub(crate) struct Sub {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub active: bool,
    /// As given in the request (`fieldMappingName` form), already checked.
    pub specifications: Vec<Value>,
}

/// The simulator's subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Subs {
    pub list: Vec<Sub>,
    pub next: u64,
    pub calls: SubscriptionCalls,
}

impl Subs {
    /// One active subscription per subject, named as the stream files its notifications.
    pub fn initial(seed: u64) -> Subs {
        let mut subs = Subs::default();
        for (k, subject) in SUBJECTS.iter().enumerate() {
            let id = subs.new_id(seed);
            subs.list.push(Sub {
                id,
                name: subscription_name(k),
                subject: (*subject).to_owned(),
                active: true,
                specifications: Vec::new(),
            });
        }
        subs
    }

    fn new_id(&mut self, seed: u64) -> String {
        let n = self.next;
        self.next += 1;
        format!(
            "0CNS{:016x}{:016x}{:016x}{:016x}",
            hash3(seed, n, 10),
            hash3(seed, n, 11),
            hash3(seed, n, 12),
            hash3(seed, n, 13)
        )
    }

    /// Whether the stream generates subject `k` with these subscriptions.
    pub fn generating(&self, k: usize) -> bool {
        let name = subscription_name(k);
        self.list.iter().any(|s| s.name == name && s.active && s.subject == SUBJECTS[k])
    }
}

/// The fields each subject can be filtered on: (subject, name, display name, content type).
/// The simulator's own catalogue, in the API's naming style.
const FIELDS: &[(&str, &str, &str, &str)] = &[
    ("PAYMENT_AUTHORIZATION", "virtualPaymentCard.number", "Virtual card number", "TEXT"),
    ("PAYMENT_AUTHORIZATION", "messageTypeIndicator", "Message type indicator", "TEXT"),
    ("PAYMENT_AUTHORIZATION", "responseCode", "Response code", "TEXT"),
    ("PAYMENT_AUTHORIZATION", "purchaseRequest.rcnAlias", "Purchase request RCN alias", "TEXT"),
    ("PAYMENT_AUTHORIZATION", "purchaseRequest.companyId", "Purchase request company id", "INTEGER"),
    ("CLEARING", "virtualPaymentCard.number", "Virtual card number", "TEXT"),
    ("CLEARING", "purchaseRequest.rcnAlias", "Purchase request RCN alias", "TEXT"),
    ("CLEARING", "purchaseRequest.companyGuid", "Purchase request company GUID", "TEXT"),
    ("BPC_PAYMENT_AUTHORIZATION", "corpGuid", "Corporation GUID", "TEXT"),
    ("BPC_PAYMENT_AUTHORIZATION", "responseCode", "Response code", "TEXT"),
    ("BPC_CLEARING", "corpGuid", "Corporation GUID", "TEXT"),
    ("BPC_CLEARING", "purchaseRequest.rcnAlias", "Purchase request RCN alias", "TEXT"),
    ("PAYMENT_UPDATE", "paymentStatus", "Payment status", "TEXT"),
    ("PAYMENT_UPDATE", "buyerId", "Buyer id", "TEXT"),
    ("TOKEN_LIFECYCLE_EVENT", "tokenUniqueReference", "Token unique reference", "TEXT"),
    ("TOKEN_LIFECYCLE_EVENT", "purchaseRequest.rcnAlias", "Purchase request RCN alias", "TEXT"),
    ("TOKEN_PROVISIONING_EVENT", "tokenUniqueReference", "Token unique reference", "TEXT"),
    ("TOKEN_PROVISIONING_EVENT", "purchaseRequest.rcnAlias", "Purchase request RCN alias", "TEXT"),
];

/// The `FieldMapping` object of `FIELDS[n]`.
fn field_mapping(seed: u64, n: usize) -> Value {
    let (subject, name, display, content_type) = FIELDS[n];
    json!({
        "id": format!("{:016X}{:016X}", hash3(seed, n as u64, 20), hash3(seed, n as u64, 21)),
        "name": name,
        "displayName": display,
        "subjectType": subject,
        "contentType": content_type,
    })
}

fn find_field(subject: &str, name: &str) -> Option<usize> {
    FIELDS.iter().position(|(s, n, _, _)| *s == subject && *n == name)
}

/// The `SubscriptionDetails` of `sub`.
fn details(seed: u64, sub: &Sub) -> Value {
    fn spec_details(seed: u64, subject: &str, spec: &Value) -> Value {
        let mut out = Map::new();
        if let Value::Object(m) = spec {
            for (k, v) in m {
                match k.as_str() {
                    "fieldMappingName" => {
                        let name = v.as_str().unwrap_or_default();
                        let mapping = find_field(subject, name).map_or(Value::Null, |n| field_mapping(seed, n));
                        out.insert("fieldMapping".into(), mapping);
                    }
                    "children" => {
                        let children = v.as_array().map(|c| c.iter().map(|c| spec_details(seed, subject, c)).collect());
                        out.insert("children".into(), Value::Array(children.unwrap_or_default()));
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        // A stable id per specification text (FNV-1a), as the API keeps one per specification.
        let text = spec.to_string();
        let fnv = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let id = format!("0CNS{:016x}{:016x}", hash3(seed, fnv, 30), hash3(seed, fnv, 31));
        out.entry("id").or_insert(Value::String(id));
        out.entry("children").or_insert(json!([]));
        Value::Object(out)
    }
    let subscriber = format!("{:016X}{:016X}", hash3(seed, 0, 1), hash3(seed, 0, 2));
    json!({
        "id": sub.id,
        "name": sub.name,
        "subjectType": sub.subject,
        "subscriberId": subscriber,
        "active": sub.active,
        "specifications": sub.specifications.iter().map(|s| spec_details(seed, &sub.subject, s)).collect::<Vec<_>>(),
    })
}

/// A `400`/`404` answer's parts: status, ReasonCode, Description.
type Refusal = (StatusCode, &'static str, String);

fn bad(reason: &'static str, description: impl Into<String>) -> Refusal {
    (StatusCode::BAD_REQUEST, reason, description.into())
}

fn not_found(id: &str) -> Refusal {
    (StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", format!("No subscription with id {id}"))
}

/// A `Subscription` request body, checked: `(name, subject, active, specifications)`.
fn parse_subscription(body: &[u8]) -> Result<(String, String, bool, Vec<Value>), Refusal> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad("INVALID_REQUEST_BODY", format!("The body is not a JSON object: {e}")))?;
    let Value::Object(m) = value else {
        return Err(bad("INVALID_REQUEST_BODY", "The body must be a Subscription object"));
    };
    let name = m.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name.is_empty() || name.len() > 50 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(bad(
            "INVALID_SUBSCRIPTION_NAME",
            format!("Subscription name {name:?} must have 1 to 50 letters, numbers, dashes and underscores"),
        ));
    }
    let subject = m.get("subjectType").and_then(Value::as_str).unwrap_or_default().to_owned();
    if !SUBJECTS.contains(&subject.as_str()) {
        return Err(bad(
            "INVALID_SUBJECT_TYPE",
            format!("subjectType {subject:?} is not one of {}", SUBJECTS.join(", ")),
        ));
    }
    let active = match m.get("active") {
        Some(Value::Bool(b)) => *b,
        _ => return Err(bad("INVALID_REQUEST_BODY", "active is required and must be true or false")),
    };
    let specifications = match m.get("specifications") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(bad("INVALID_REQUEST_BODY", "specifications must be an array")),
    };
    check_specifications(&subject, &specifications)?;
    Ok((name, subject, active, specifications))
}

fn check_specifications(subject: &str, specs: &[Value]) -> Result<(), Refusal> {
    for (i, spec) in specs.iter().enumerate() {
        let Value::Object(m) = spec else {
            return Err(bad("INVALID_SPECIFICATION", format!("specifications[{i}] is not an object")));
        };
        let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
        let field = text("fieldMappingName");
        if find_field(subject, field).is_none() {
            return Err(bad(
                "INVALID_FIELD_MAPPING_NAME",
                format!("Field {field:?} is not a field mapping of subject {subject} (see GET /fieldmappings)"),
            ));
        }
        let operator = text("operator");
        let expected_operator = if i == 0 { ["WHERE", "WHERE"] } else { ["AND", "OR"] };
        if !expected_operator.contains(&operator) {
            return Err(bad(
                "INVALID_SPECIFICATION",
                format!("specifications[{i}].operator {operator:?} must be {}", expected_operator.join(" or ")),
            ));
        }
        let field_operator = text("fieldOperator");
        if !["EQUALS", "GREATER_THAN", "LESS_THAN", "BETWEEN"].contains(&field_operator) {
            return Err(bad("INVALID_SPECIFICATION", format!("fieldOperator {field_operator:?} is not supported")));
        }
        if m.get("expectedContent").is_none_or(|c| c.get("value").is_none()) {
            return Err(bad("INVALID_SPECIFICATION", format!("specifications[{i}].expectedContent.value is required")));
        }
        if let Some(children) = m.get("children").and_then(Value::as_array) {
            check_specifications(subject, children)?;
        }
    }
    Ok(())
}

/// Parses `offset`, `limit` and `sort` of `GET /subscriptions`.
fn list_params(raw: Option<&str>) -> Result<(usize, usize, String), Refusal> {
    let (mut offset, mut limit, mut sort) = (0usize, 25usize, "name".to_owned());
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode_component(v).map_err(|e| bad("INVALID_REQUEST_PARAMETER", e.to_string()))?;
        let number = |name: &str| {
            v.parse::<usize>().map_err(|_| {
                bad("INVALID_REQUEST_PARAMETER", format!("{name} must be a non-negative integer, got {v:?}"))
            })
        };
        match k {
            "offset" => offset = number("offset")?,
            "limit" => {
                limit = number("limit")?;
                if limit == 0 {
                    return Err(bad("INVALID_REQUEST_PARAMETER", "limit must be at least 1"));
                }
            }
            "sort" => {
                if !["name", "id", "subjectType"].contains(&v.trim_start_matches('-')) {
                    return Err(bad("INVALID_REQUEST_PARAMETER", format!("cannot sort by {v:?}")));
                }
                sort = v;
            }
            _ => {}
        }
    }
    Ok((offset, limit, sort))
}

impl Simulator {
    /// The subscriptions as `GET /subscriptions` would list them (sorted by name).
    pub fn subscriptions(&self) -> Vec<Value> {
        let seed = self.inner.stream.seed;
        let subs = lock(&self.inner.subscriptions);
        let mut list: Vec<&Sub> = subs.list.iter().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list.into_iter().map(|s| details(seed, s)).collect()
    }

    /// Sets `active` of the subscription called `name`, as a `PUT` would (without counting
    /// as a call). Returns whether it exists.
    pub fn set_subscription_active(&self, name: &str, active: bool) -> bool {
        let mut subs = lock(&self.inner.subscriptions);
        let Some(sub) = subs.list.iter_mut().find(|s| s.name == name) else {
            return false;
        };
        sub.active = active;
        self.sync_gaps(&subs);
        true
    }

    /// Deletes every subscription (as if the client had none yet): the stream stops.
    pub fn clear_subscriptions(&self) {
        let mut subs = lock(&self.inner.subscriptions);
        subs.list.clear();
        self.sync_gaps(&subs);
    }

    /// The subscription calls answered so far (successful ones).
    pub fn subscription_calls(&self) -> SubscriptionCalls {
        lock(&self.inner.subscriptions).calls.clone()
    }

    /// Opens or closes each subject's gap after a change of the subscriptions.
    fn sync_gaps(&self, subs: &Subs) {
        let now = self.now_ms();
        let mut state = lock(&self.inner.state);
        for k in 0..SUBJECTS.len() {
            state.gaps.set(k, subs.generating(k), now);
        }
    }
}

/// Answers one subscription or field mapping call whose OAuth signature (body hash
/// included) has been checked.
pub(crate) fn answer(
    sim: &Simulator,
    method: &axum::http::Method,
    route: Route,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    use axum::http::Method;
    let seed = sim.inner.stream.seed;
    let result: Result<(StatusCode, Option<Value>, Option<String>), Refusal> = (|| {
        let mut subs = lock(&sim.inner.subscriptions);
        match (route, method) {
            (Route::FieldMappings, &Method::GET) => {
                subs.calls.field_mappings += 1;
                let all: Vec<Value> = (0..FIELDS.len()).map(|n| field_mapping(seed, n)).collect();
                Ok((StatusCode::OK, Some(Value::Array(all)), None))
            }
            (Route::Collection, &Method::GET) => {
                let (offset, limit, sort) = list_params(query)?;
                let mut list: Vec<&Sub> = subs.list.iter().collect();
                let key = sort.trim_start_matches('-').to_owned();
                list.sort_by(|a, b| {
                    let field = |s: &Sub| match key.as_str() {
                        "id" => s.id.clone(),
                        "subjectType" => s.subject.clone(),
                        _ => s.name.clone(),
                    };
                    field(a).cmp(&field(b)).then_with(|| a.name.cmp(&b.name))
                });
                if sort.starts_with('-') {
                    list.reverse();
                }
                let page: Vec<Value> = list.into_iter().skip(offset).take(limit).map(|s| details(seed, s)).collect();
                subs.calls.list += 1;
                Ok((StatusCode::OK, Some(Value::Array(page)), None))
            }
            (Route::Collection, &Method::POST) => {
                let (name, subject, active, specifications) = parse_subscription(body)?;
                if subs.list.iter().any(|s| s.name == name) {
                    return Err(bad(
                        "DUPLICATE_SUBSCRIPTION_NAME",
                        format!("A subscription named {name} already exists"),
                    ));
                }
                let id = subs.new_id(seed);
                let sub = Sub { id: id.clone(), name, subject, active, specifications };
                let value = details(seed, &sub);
                subs.list.push(sub);
                subs.calls.create += 1;
                sim.sync_gaps(&subs);
                Ok((StatusCode::CREATED, Some(value), Some(id)))
            }
            (Route::One(id), &Method::GET) => {
                let sub = subs.list.iter().find(|s| s.id == id).ok_or_else(|| not_found(&id))?;
                let value = details(seed, sub);
                subs.calls.get += 1;
                Ok((StatusCode::OK, Some(value), None))
            }
            (Route::One(id), &Method::PUT) => {
                let at = subs.list.iter().position(|s| s.id == id).ok_or_else(|| not_found(&id))?;
                let (name, subject, active, specifications) = parse_subscription(body)?;
                if subs.list.iter().any(|s| s.name == name && s.id != id) {
                    return Err(bad(
                        "DUPLICATE_SUBSCRIPTION_NAME",
                        format!("A subscription named {name} already exists"),
                    ));
                }
                let sub = Sub { id, name, subject, active, specifications };
                let value = details(seed, &sub);
                subs.list[at] = sub;
                subs.calls.update += 1;
                sim.sync_gaps(&subs);
                Ok((StatusCode::OK, Some(value), None))
            }
            (Route::One(id), &Method::DELETE) => {
                let at = subs.list.iter().position(|s| s.id == id).ok_or_else(|| not_found(&id))?;
                subs.list.remove(at);
                subs.calls.delete += 1;
                sim.sync_gaps(&subs);
                Ok((StatusCode::NO_CONTENT, None, None))
            }
            _ => Err((StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", format!("{method} is not supported here"))),
        }
    })();
    match result {
        Ok((status, body, location)) => {
            let mut response = respond(sim, status, body.map(|b| b.to_string()).unwrap_or_default());
            if let Some(id) = location
                && let Ok(v) = HeaderValue::from_str(&format!("subscriptions/{id}"))
            {
                response.headers_mut().insert(header::LOCATION, v);
            }
            response
        }
        Err((status, reason, description)) => {
            let body = error_body(API_SOURCE, reason, &description, false).to_string();
            respond(sim, status, body)
        }
    }
}

/// A request body that cannot be read: too long, or the connection failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the request body: {0}")]
pub(crate) struct BodyError(#[source] axum::Error);

/// Reads a request body of at most [`MAX_BODY`] bytes.
pub(crate) async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, BodyError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(BodyError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/x/subscriptions"), Some(Route::Collection));
        assert_eq!(route("/x/subscriptions/"), Some(Route::Collection));
        assert_eq!(route("/x/subscriptions/0CNSab"), Some(Route::One("0CNSab".into())));
        assert_eq!(route("/x/fieldmappings"), Some(Route::FieldMappings));
        assert_eq!(route("/x/notifications"), None);
    }

    #[test]
    fn a_subject_generates_only_with_its_active_subscription() {
        let mut subs = Subs::initial(1);
        assert!((0..SUBJECTS.len()).all(|k| subs.generating(k)));
        subs.list[0].active = false;
        let k = SUBJECTS.iter().position(|s| *s == subs.list[0].subject).unwrap();
        assert!(!subs.generating(k));
        subs.list.remove(0);
        assert!(!subs.generating(k));
    }

    #[test]
    fn list_parameters_are_checked() {
        assert_eq!(list_params(None).unwrap(), (0, 25, "name".into()));
        assert_eq!(list_params(Some("offset=3&limit=2&sort=-id")).unwrap(), (3, 2, "-id".into()));
        for bad in ["limit=0", "offset=-1", "sort=color", "limit=x"] {
            assert_eq!(list_params(Some(bad)).unwrap_err().0, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn requests_are_checked() {
        let ok = br#"{"name":"ops-1","subjectType":"CLEARING","active":true,"specifications":[
            {"type":"FIELD","operator":"WHERE","fieldMappingName":"purchaseRequest.rcnAlias","fieldOperator":"EQUALS",
             "expectedContent":{"contentType":"TEXT","value":"x"}}]}"#;
        assert!(parse_subscription(ok).is_ok());
        for (body, reason) in [
            (r#"{"name":"a b","subjectType":"CLEARING","active":true}"#, "INVALID_SUBSCRIPTION_NAME"),
            (r#"{"name":"a","subjectType":"NOPE","active":true}"#, "INVALID_SUBJECT_TYPE"),
            (r#"{"name":"a","subjectType":"CLEARING"}"#, "INVALID_REQUEST_BODY"),
            (
                r#"{"name":"a","subjectType":"CLEARING","active":true,"specifications":[{"operator":"WHERE","fieldMappingName":"corpGuid","fieldOperator":"EQUALS","expectedContent":{"value":"x"}}]}"#,
                "INVALID_FIELD_MAPPING_NAME",
            ),
            ("[", "INVALID_REQUEST_BODY"),
        ] {
            assert_eq!(parse_subscription(body.as_bytes()).unwrap_err().1, reason, "{body}");
        }
    }
}
