//! Subscriptions as code (SPEC 11): the `[[subscriptions]]` entries of the configuration,
//! their validation, and what is built on them.
//!
//! - this module: the TOML form of a subscription ([`SubscriptionConfig`]), its checks (run
//!   by every configuration load, so `check-config` reports them with the key and line), and
//!   its translation to the API's request form;
//! - [`plan`]: the comparison of the declared set with what the API lists, as changes;
//! - [`render`]: the tables `subscriptions list|show` and `fieldmappings` print.
//!
//! Built on them elsewhere: the commands (`subscriptions …`, `fieldmappings`) in
//! `cli::subscriptions`, and the daemon's hourly look at the subscriptions (metrics,
//! warnings; it never changes one) in `service::subscriptions`. This module imports only
//! the API layer.

pub mod plan;
pub mod render;

use serde::Deserialize;
use serde_json::Value;

use crate::cen::SUBJECTS as CEN_SUBJECTS;
use crate::cen::subscriptions::{FieldContent, Specification, Subscription};

/// `[[subscriptions]]`: one subscription the API must have.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Unique per client: letters, digits, `-` and `_`, at most 50 (the API's rule).
    /// Required: subscriptions are matched by name.
    pub name: String,
    /// The API's `subjectType`, one of the seven subjects. Required.
    pub subject: String,
    /// Whether notifications are generated for it. Default `true`.
    #[serde(default = "yes")]
    pub active: bool,
    /// Filter; empty (the default) = every event of the subject.
    #[serde(default)]
    pub specifications: Vec<SpecificationConfig>,
}

/// One filter criterion of a `[[subscriptions]]` entry; keys map to the API's (SPEC 11).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecificationConfig {
    /// `type`: what the criterion refers to. Default `FIELD`, the only kind the API has.
    #[serde(rename = "type", default = "field_kind")]
    pub kind: String,
    /// `WHERE` for the first criterion of a list, `AND` or `OR` for the next ones. Required.
    pub operator: String,
    /// `fieldMappingName`: a field `GET /fieldmappings` lists for the subject. Required.
    pub field: String,
    /// `EQUALS`, `GREATER_THAN`, `LESS_THAN` or `BETWEEN`. Default `EQUALS`.
    #[serde(default = "equals")]
    pub field_operator: String,
    /// `expectedContent.contentType`: `TEXT`, `INTEGER`, `NUMBER`, `DATE` or `CURRENCY`.
    /// Default `TEXT`.
    #[serde(default = "text")]
    pub content_type: String,
    /// `expectedContent.value`. Required.
    pub value: Value,
    /// `expectedContent.anotherValue`: the upper bound of `BETWEEN`. Default none.
    #[serde(default)]
    pub another_value: Option<Value>,
    /// Nested criteria. Default none.
    #[serde(default)]
    pub children: Vec<SpecificationConfig>,
}

fn yes() -> bool {
    true
}
fn field_kind() -> String {
    "FIELD".into()
}
fn equals() -> String {
    "EQUALS".into()
}
fn text() -> String {
    "TEXT".into()
}

/// The API's values for each key.
pub const OPERATORS: [&str; 3] = ["WHERE", "AND", "OR"];
pub const FIELD_OPERATORS: [&str; 4] = ["EQUALS", "GREATER_THAN", "LESS_THAN", "BETWEEN"];
pub const CONTENT_TYPES: [&str; 5] = ["TEXT", "INTEGER", "NUMBER", "DATE", "CURRENCY"];

/// Whether `name` is a valid subscription name (the API's rule).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 50 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks the declared subscriptions; an error is `(dotted key, message)` for
/// [`crate::config::ConfigError::Invalid`].
pub fn validate(declared: &[SubscriptionConfig]) -> Result<(), (String, String)> {
    let mut names = std::collections::HashSet::new();
    for (i, s) in declared.iter().enumerate() {
        let key = |k: &str| format!("subscriptions[{i}].{k}");
        if !valid_name(&s.name) {
            return Err((key("name"), format!("{:?}: use 1 to 50 letters, digits, - and _", s.name)));
        }
        if !names.insert(s.name.as_str()) {
            return Err((key("name"), format!("subscription name {:?} is declared twice", s.name)));
        }
        if !CEN_SUBJECTS.contains(&s.subject.as_str()) {
            return Err((key("subject"), format!("unknown subject {:?}; expected one of {CEN_SUBJECTS:?}", s.subject)));
        }
        validate_specs(&s.specifications, &key("specifications"))?;
    }
    Ok(())
}

fn validate_specs(specs: &[SpecificationConfig], key: &str) -> Result<(), (String, String)> {
    for (i, spec) in specs.iter().enumerate() {
        let key = |k: &str| format!("{key}[{i}].{k}");
        if spec.kind != "FIELD" {
            return Err((key("type"), format!("{:?}: the API knows only \"FIELD\"", spec.kind)));
        }
        let operator = spec.operator.as_str();
        if !OPERATORS.contains(&operator) {
            return Err((key("operator"), format!("{operator:?}: expected one of {OPERATORS:?}")));
        }
        if (i == 0) != (operator == "WHERE") {
            let want = if i == 0 {
                "the first criterion of a list is \"WHERE\""
            } else {
                "after the first criterion use \"AND\" or \"OR\""
            };
            return Err((key("operator"), format!("{operator:?}: {want}")));
        }
        if spec.field.is_empty() {
            return Err((key("field"), "must name a field (see `cen-poller fieldmappings`)".into()));
        }
        if !FIELD_OPERATORS.contains(&spec.field_operator.as_str()) {
            return Err((
                key("field_operator"),
                format!("{:?}: expected one of {FIELD_OPERATORS:?}", spec.field_operator),
            ));
        }
        if !CONTENT_TYPES.contains(&spec.content_type.to_ascii_uppercase().as_str()) {
            return Err((key("content_type"), format!("{:?}: expected one of {CONTENT_TYPES:?}", spec.content_type)));
        }
        if spec.field_operator == "BETWEEN" && spec.another_value.is_none() {
            return Err((key("another_value"), "is required with field_operator = \"BETWEEN\"".into()));
        }
        validate_specs(&spec.children, &key("children"))?;
    }
    Ok(())
}

impl SpecificationConfig {
    /// The API's request form.
    pub fn to_request(&self) -> Specification {
        Specification {
            kind: self.kind.clone(),
            operator: self.operator.clone(),
            field_mapping_name: self.field.clone(),
            field_operator: self.field_operator.clone(),
            expected_content: FieldContent {
                content_type: self.content_type.clone(),
                value: self.value.clone(),
                another_value: self.another_value.clone(),
            },
            children: self.children.iter().map(SpecificationConfig::to_request).collect(),
        }
    }
}

impl SubscriptionConfig {
    /// The API's request form.
    pub fn to_request(&self) -> Subscription {
        Subscription {
            id: None,
            name: self.name.clone(),
            subject_type: self.subject.clone(),
            active: self.active,
            specifications: self.specifications.iter().map(SpecificationConfig::to_request).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<SubscriptionConfig> {
        #[derive(Deserialize)]
        struct F {
            subscriptions: Vec<SubscriptionConfig>,
        }
        toml::from_str::<F>(text).unwrap().subscriptions
    }

    #[test]
    fn entries_are_checked() {
        let ok = parse(
            r#"
[[subscriptions]]
name = "ops-clearing"
subject = "CLEARING"
specifications = [
  { operator = "WHERE", field = "purchaseRequest.rcnAlias", value = "Travel" },
  { operator = "AND", field = "purchaseRequest.companyId", field_operator = "BETWEEN", content_type = "INTEGER", value = 1, another_value = 9 },
]
"#,
        );
        assert!(validate(&ok).is_ok());
        assert!(ok[0].active);
        let request = serde_json::to_value(ok[0].to_request()).unwrap();
        assert_eq!(request["specifications"][0]["fieldMappingName"], "purchaseRequest.rcnAlias");
        assert_eq!(request["specifications"][0]["expectedContent"]["contentType"], "TEXT");
        assert_eq!(request["specifications"][1]["expectedContent"]["anotherValue"], 9);

        let one = |name: &str, subject: &str, spec: &str| {
            format!("[[subscriptions]]\nname = {name:?}\nsubject = {subject:?}\nspecifications = [{spec}]\n")
        };
        for (text, key) in [
            (one("a b", "CLEARING", ""), "subscriptions[0].name"),
            (one(&"x".repeat(51), "CLEARING", ""), "subscriptions[0].name"),
            (one("a", "CLEARINGS", ""), "subscriptions[0].subject"),
            (
                one("a", "CLEARING", r#"{ operator = "AND", field = "f", value = 1 }"#),
                "subscriptions[0].specifications[0].operator",
            ),
            (
                one(
                    "a",
                    "CLEARING",
                    r#"{ operator = "WHERE", field = "f", value = 1 }, { operator = "WHERE", field = "f", value = 1 }"#,
                ),
                "subscriptions[0].specifications[1].operator",
            ),
            (
                one("a", "CLEARING", r#"{ operator = "WHERE", field = "f", field_operator = "LIKE", value = 1 }"#),
                "subscriptions[0].specifications[0].field_operator",
            ),
            (
                one("a", "CLEARING", r#"{ operator = "WHERE", field = "f", field_operator = "BETWEEN", value = 1 }"#),
                "subscriptions[0].specifications[0].another_value",
            ),
            (
                one("a", "CLEARING", r#"{ operator = "WHERE", field = "f", content_type = "BLOB", value = 1 }"#),
                "subscriptions[0].specifications[0].content_type",
            ),
            (
                one("a", "CLEARING", r#"{ operator = "WHERE", field = "", value = 1 }"#),
                "subscriptions[0].specifications[0].field",
            ),
        ] {
            assert_eq!(validate(&parse(&text)).unwrap_err().0, key, "{text}");
        }
        let twice = format!("{}{}", one("a", "CLEARING", ""), one("a", "PAYMENT_UPDATE", ""));
        assert_eq!(validate(&parse(&twice)).unwrap_err().0, "subscriptions[1].name");
    }
}
