//! What `subscriptions apply` would change (SPEC 11): the declared subscriptions compared by
//! `name` with what the API lists.
//!
//! - declared, not listed: created;
//! - listed with another `subject`: replaced (deleted, then created again — the API cannot
//!   change a subscription's subject);
//! - listed with another `active` or other `specifications`: updated (`PUT`);
//! - listed, not declared: deleted only with `--prune`, else left alone.
//!
//! Specifications are compared in a normal form (upper-case keywords, a scalar value as its
//! text, an empty `anotherValue` as none), so an answer that spells the same filter
//! differently from the configuration is no change: `apply` run twice changes nothing the
//! second time. Lines keep the declared order, deletions last by name.

use serde_json::Value;

use super::SubscriptionConfig;
use crate::cen::subscriptions::{FieldMapping, Specification, Subscription, SubscriptionDetails};

/// One change `apply` makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Create { desired: Subscription },
    Update { id: String, desired: Subscription, what: Vec<String> },
    Replace { id: String, desired: Subscription, from_subject: String },
    Delete { id: String, name: String },
}

impl Change {
    /// The subscription's name.
    pub fn name(&self) -> &str {
        match self {
            Change::Create { desired } | Change::Update { desired, .. } | Change::Replace { desired, .. } => {
                &desired.name
            }
            Change::Delete { name, .. } => name,
        }
    }

    /// The line `plan` prints for it.
    pub fn line(&self) -> String {
        match self {
            Change::Create { desired } => format!("+ create {}", desired.name),
            Change::Update { desired, what, .. } => format!("~ update {}: {}", desired.name, what.join(", ")),
            Change::Replace { desired, from_subject, .. } => {
                format!("-/+ replace {}: subject {} -> {}", desired.name, from_subject, desired.subject_type)
            }
            Change::Delete { name, .. } => format!("- delete {name}"),
        }
    }
}

/// The count line that ends a plan.
pub fn summary(changes: &[Change]) -> String {
    let count = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count();
    format!(
        "plan: {} to create, {} to update, {} to replace, {} to delete",
        count(|c| matches!(c, Change::Create { .. })),
        count(|c| matches!(c, Change::Update { .. })),
        count(|c| matches!(c, Change::Replace { .. })),
        count(|c| matches!(c, Change::Delete { .. })),
    )
}

/// A specification in the form two equal filters share.
#[derive(Debug, PartialEq)]
struct Normal {
    kind: String,
    operator: String,
    field: String,
    field_operator: String,
    content_type: String,
    value: Option<String>,
    another_value: Option<String>,
    children: Vec<Normal>,
}

/// A value as text: strings as they are, numbers and booleans written out, absent, null
/// and empty objects or arrays as none.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(m) if m.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        other => Some(other.to_string()),
    }
}

fn normal(s: &Specification) -> Normal {
    Normal {
        kind: s.kind.to_ascii_uppercase(),
        operator: s.operator.to_ascii_uppercase(),
        field: s.field_mapping_name.clone(),
        field_operator: s.field_operator.to_ascii_uppercase(),
        content_type: s.expected_content.content_type.to_ascii_uppercase(),
        value: scalar(&s.expected_content.value),
        another_value: s.expected_content.another_value.as_ref().and_then(scalar),
        children: s.children.iter().map(normal).collect(),
    }
}

fn same_specifications(a: &[Specification], b: &[Specification]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| normal(x) == normal(y))
}

/// The changes that make `actual` match `declared` (deleting undeclared ones when `prune`).
pub fn plan(declared: &[SubscriptionConfig], actual: &[SubscriptionDetails], prune: bool) -> Vec<Change> {
    let mut changes = Vec::new();
    for d in declared {
        let desired = d.to_request();
        let Some(have) = actual.iter().find(|a| a.name == d.name) else {
            changes.push(Change::Create { desired });
            continue;
        };
        let id = have.id.clone().unwrap_or_default();
        if have.subject_type != d.subject {
            changes.push(Change::Replace { id, desired, from_subject: have.subject_type.clone() });
            continue;
        }
        let have = have.to_request();
        let mut what = Vec::new();
        if have.active != desired.active {
            what.push(format!("active {} -> {}", have.active, desired.active));
        }
        if !same_specifications(&have.specifications, &desired.specifications) {
            let (from, to) = (have.specifications.len(), desired.specifications.len());
            what.push(if from == to {
                format!("specifications changed ({to} criteria)")
            } else {
                format!("specifications {from} -> {to} criteria")
            });
        }
        if !what.is_empty() {
            changes.push(Change::Update { id, desired, what });
        }
    }
    if prune {
        let mut undeclared: Vec<&SubscriptionDetails> =
            actual.iter().filter(|a| !declared.iter().any(|d| d.name == a.name)).collect();
        undeclared.sort_by(|a, b| a.name.cmp(&b.name));
        for a in undeclared {
            changes.push(Change::Delete { id: a.id.clone().unwrap_or_default(), name: a.name.clone() });
        }
    }
    changes
}

/// A declared subscription filters on a field its subject does not have (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "subscriptions[{index}] ({name:?}): field {field:?} is not a field of {subject} according to GET /fieldmappings; `cen-poller fieldmappings --subject {subject}` lists them"
)]
pub struct UnknownField {
    /// The entry's position in the file.
    pub index: usize,
    /// The entry's `name`.
    pub name: String,
    pub field: String,
    pub subject: String,
}

/// Checks every field the declared subscriptions filter on against the field mappings of
/// their subject. Err: which entry, which field, and what to do.
pub fn check_fields(declared: &[SubscriptionConfig], mappings: &[FieldMapping]) -> Result<(), UnknownField> {
    fn first_unknown<'a>(specs: &'a [super::SpecificationConfig], known: &impl Fn(&str) -> bool) -> Option<&'a str> {
        specs.iter().find_map(
            |s| {
                if known(&s.field) { first_unknown(&s.children, known) } else { Some(s.field.as_str()) }
            },
        )
    }
    for (index, d) in declared.iter().enumerate() {
        let known = |field: &str| {
            mappings.iter().any(|m| m.name == field && m.subject_type.as_deref().is_none_or(|s| s == d.subject))
        };
        if let Some(field) = first_unknown(&d.specifications, &known) {
            return Err(UnknownField {
                index,
                name: d.name.clone(),
                field: field.to_owned(),
                subject: d.subject.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cen::subscriptions::{FieldContent, SpecificationDetails};

    fn declared(text: &str) -> Vec<SubscriptionConfig> {
        #[derive(serde::Deserialize)]
        struct F {
            subscriptions: Vec<SubscriptionConfig>,
        }
        toml::from_str::<F>(text).unwrap().subscriptions
    }

    fn have(name: &str, subject: &str, active: bool, specs: Vec<SpecificationDetails>) -> SubscriptionDetails {
        SubscriptionDetails {
            id: Some(format!("id-{name}")),
            name: name.into(),
            subject_type: subject.into(),
            subscriber_id: None,
            active,
            specifications: specs,
        }
    }

    fn spec(field: &str, value: Value) -> SpecificationDetails {
        SpecificationDetails {
            id: Some("s".into()),
            kind: "FIELD".into(),
            operator: "WHERE".into(),
            field_mapping: Some(FieldMapping {
                id: None,
                name: field.into(),
                display_name: None,
                subject_type: None,
                content_type: None,
            }),
            field_operator: "EQUALS".into(),
            expected_content: Some(FieldContent {
                content_type: "TEXT".into(),
                value,
                another_value: Some(serde_json::json!({})),
            }),
            children: vec![],
        }
    }

    const CONFIG: &str = r#"
[[subscriptions]]
name = "new"
subject = "CLEARING"
[[subscriptions]]
name = "off"
subject = "CLEARING"
active = false
[[subscriptions]]
name = "moved"
subject = "PAYMENT_UPDATE"
[[subscriptions]]
name = "same"
subject = "CLEARING"
specifications = [{ operator = "WHERE", field = "purchaseRequest.companyId", content_type = "INTEGER", value = 7 }]
"#;

    #[test]
    fn create_update_replace_and_no_change() {
        let declared = declared(CONFIG);
        let mut same = spec("purchaseRequest.companyId", "7".into());
        same.expected_content.as_mut().unwrap().content_type = "integer".into();
        let actual = vec![
            have("off", "CLEARING", true, vec![]),
            have("moved", "CLEARING", true, vec![]),
            have("same", "CLEARING", true, vec![same]),
            have("other", "PAYMENT_UPDATE", true, vec![]),
        ];
        let changes = plan(&declared, &actual, false);
        let lines: Vec<String> = changes.iter().map(Change::line).collect();
        assert_eq!(
            lines,
            [
                "+ create new",
                "~ update off: active true -> false",
                "-/+ replace moved: subject CLEARING -> PAYMENT_UPDATE"
            ]
        );
        assert_eq!(summary(&changes), "plan: 1 to create, 1 to update, 1 to replace, 0 to delete");
        let pruned = plan(&declared, &actual, true);
        assert_eq!(pruned.last().unwrap().line(), "- delete other");
        assert_eq!(pruned.len(), 4);
    }

    #[test]
    fn a_different_filter_is_an_update() {
        let declared = declared(CONFIG);
        let actual = vec![have("same", "CLEARING", true, vec![spec("purchaseRequest.companyId", "8".into())])];
        let changes = plan(&declared[3..], &actual, false);
        assert_eq!(
            changes.iter().map(Change::line).collect::<Vec<_>>(),
            ["~ update same: specifications changed (1 criteria)"]
        );
        let none = vec![have("same", "CLEARING", true, vec![])];
        assert_eq!(plan(&declared[3..], &none, false)[0].line(), "~ update same: specifications 0 -> 1 criteria");
    }

    #[test]
    fn fields_must_be_listed_for_the_subject() {
        let declared = declared(CONFIG);
        let mapping = |subject: &str| FieldMapping {
            id: None,
            name: "purchaseRequest.companyId".into(),
            display_name: None,
            subject_type: Some(subject.into()),
            content_type: None,
        };
        assert!(check_fields(&declared, &[mapping("CLEARING")]).is_ok());
        let e = check_fields(&declared, &[mapping("PAYMENT_AUTHORIZATION")]).unwrap_err().to_string();
        assert!(
            e.starts_with(r#"subscriptions[3] ("same"): field "purchaseRequest.companyId" is not a field of CLEARING"#),
            "{e}"
        );
    }
}
