//! Subscriptions and field mappings as the text tables `subscriptions list|show` and
//! `fieldmappings` print, and `demo` shows.

use crate::cen::subscriptions::{FieldMapping, SpecificationDetails, SubscriptionDetails};

/// One specification list as text: `WHERE field EQUALS "x" AND (…)`.
pub fn filter_text(specs: &[SpecificationDetails]) -> String {
    if specs.is_empty() {
        return "(all events)".into();
    }
    let one = |s: &SpecificationDetails| {
        let field = s.field_mapping.as_ref().map_or("?", |f| f.name.as_str());
        let content = s.expected_content.as_ref();
        let value = content.map_or("?".to_string(), |c| c.value.to_string());
        let mut text = format!("{} {field} {} {value}", s.operator, s.field_operator);
        if let Some(another) =
            content.and_then(|c| c.another_value.as_ref()).filter(|v| !v.is_null() && **v != serde_json::json!({}))
        {
            text.push_str(&format!(" {another}"));
        }
        if !s.children.is_empty() {
            text.push_str(&format!(" ({})", filter_text(&s.children)));
        }
        text
    };
    specs.iter().map(one).collect::<Vec<_>>().join(" ")
}

/// Left-aligned columns, two spaces apart.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut out = String::new();
        for (i, (cell, w)) in cells.into_iter().zip(&widths).enumerate() {
            if i + 1 == n {
                out.push_str(&cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// The `subscriptions list` table.
pub fn table(list: &[SubscriptionDetails]) -> String {
    if list.is_empty() {
        return "no subscriptions: Mastercard generates no notifications until one exists (README, \"Subscriptions\")\n"
            .into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.subject_type.clone(),
                if s.active { "yes".into() } else { "no".into() },
                s.id.clone().unwrap_or_default(),
                filter_text(&s.specifications),
            ]
        })
        .collect();
    columns(&["NAME", "SUBJECT", "ACTIVE", "ID", "FILTER"], &rows)
}

pub fn details_text(s: &SubscriptionDetails) -> String {
    format!(
        "name           {}\nsubject        {}\nactive         {}\nid             {}\nsubscriber id  {}\nfilter         {}\n",
        s.name,
        s.subject_type,
        s.active,
        s.id.as_deref().unwrap_or("-"),
        s.subscriber_id.as_deref().unwrap_or("-"),
        filter_text(&s.specifications)
    )
}

pub fn mappings_table(list: &[FieldMapping]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            vec![
                m.subject_type.clone().unwrap_or_default(),
                m.name.clone(),
                m.content_type.clone().unwrap_or_default(),
                m.display_name.clone().unwrap_or_default(),
            ]
        })
        .collect();
    columns(&["SUBJECT", "FIELD", "CONTENT TYPE", "DESCRIPTION"], &rows)
}
