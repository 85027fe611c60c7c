//! The subscription calls of the CEN API (OpenAPI 1.2.0; SPEC 11): list, get, create,
//! update, delete, and the field mappings subscriptions filter on.
//!
//! Requests carry a [`Subscription`] (each specification names its field by
//! `fieldMappingName`); answers are [`SubscriptionDetails`] (the field comes back as a
//! [`FieldMapping`] object). Answers are read leniently — unknown members are ignored, a
//! missing list is empty, a nested `children` item that is not an object is skipped — because
//! the API's own examples disagree with its schemas. Every call is signed like the
//! notification calls, with the body's hash for requests with a body; an error answer is an
//! [`ApiError::Status`] carrying the gateway's `ReasonCode` and `Description`.

use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::client::{ApiError, Client};
use super::oauth::encode_query_value;

/// The API's default page size for `GET /subscriptions`; the list is read page by page
/// until a page comes back shorter than this.
pub const PAGE: usize = 25;

/// A subscription as a request carries it (`POST`, `PUT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Read-only; ignored by the API in requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    pub subject_type: String,
    pub active: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub specifications: Vec<Specification>,
}

/// A filter criterion of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Specification {
    #[serde(rename = "type", default = "field_type")]
    pub kind: String,
    pub operator: String,
    pub field_mapping_name: String,
    pub field_operator: String,
    pub expected_content: FieldContent,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Specification>,
}

/// What content of the field matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldContent {
    #[serde(default = "text_type")]
    pub content_type: String,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub another_value: Option<Value>,
}

/// A subscription as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDetails {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub subject_type: String,
    #[serde(default)]
    pub subscriber_id: Option<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default, deserialize_with = "lenient_specs")]
    pub specifications: Vec<SpecificationDetails>,
}

/// A filter criterion as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecificationDetails {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type", default = "field_type")]
    pub kind: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub field_mapping: Option<FieldMapping>,
    #[serde(default)]
    pub field_operator: String,
    #[serde(default)]
    pub expected_content: Option<FieldContent>,
    #[serde(default, deserialize_with = "lenient_specs")]
    pub children: Vec<SpecificationDetails>,
}

/// A field a subscription can filter on (`GET /fieldmappings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub subject_type: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
}

fn field_type() -> String {
    "FIELD".into()
}

fn text_type() -> String {
    "TEXT".into()
}

fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A list of specifications, skipping items that are not specification objects.
fn lenient_specs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SpecificationDetails>, D::Error> {
    let items = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    Ok(items.into_iter().filter(Value::is_object).filter_map(|v| serde_json::from_value(v).ok()).collect())
}

impl SpecificationDetails {
    /// The request form of this answer (the field by name).
    pub fn to_request(&self) -> Specification {
        Specification {
            kind: self.kind.clone(),
            operator: self.operator.clone(),
            field_mapping_name: self.field_mapping.as_ref().map(|f| f.name.clone()).unwrap_or_default(),
            field_operator: self.field_operator.clone(),
            expected_content: self.expected_content.clone().unwrap_or(FieldContent {
                content_type: text_type(),
                value: Value::Null,
                another_value: None,
            }),
            children: self.children.iter().map(SpecificationDetails::to_request).collect(),
        }
    }
}

impl SubscriptionDetails {
    /// The request form of this answer: what a `PUT` that changes nothing would carry.
    pub fn to_request(&self) -> Subscription {
        Subscription {
            id: None,
            name: self.name.clone(),
            subject_type: self.subject_type.clone(),
            active: self.active,
            specifications: self.specifications.iter().map(SpecificationDetails::to_request).collect(),
        }
    }
}

fn body_error(what: &str, e: serde_json::Error) -> ApiError {
    ApiError::Body(format!("{what}: {e}"))
}

impl Client {
    fn subscriptions_url(&self) -> String {
        format!("{}/subscriptions", self.base_url())
    }

    fn subscription_url(&self, id: &str) -> String {
        format!("{}/subscriptions/{}", self.base_url(), encode_query_value(id))
    }

    /// `GET /subscriptions`, every page (`offset`/`limit`, sorted by name).
    pub async fn list_subscriptions(&self) -> Result<Vec<SubscriptionDetails>, ApiError> {
        let mut all = Vec::new();
        loop {
            let url = format!("{}?offset={}&limit={PAGE}&sort=name", self.subscriptions_url(), all.len());
            let (_, body) = self.call(Method::GET, &url, None).await?;
            let page: Vec<SubscriptionDetails> =
                serde_json::from_slice(&body).map_err(|e| body_error("GET /subscriptions", e))?;
            let n = page.len();
            all.extend(page);
            // A short page is the last; a bound keeps a misbehaving server from looping us.
            if n < PAGE || all.len() >= 100_000 {
                return Ok(all);
            }
        }
    }

    /// `GET /subscriptions/{id}`.
    pub async fn get_subscription(&self, id: &str) -> Result<SubscriptionDetails, ApiError> {
        let (_, body) = self.call(Method::GET, &self.subscription_url(id), None).await?;
        serde_json::from_slice(&body).map_err(|e| body_error("GET /subscriptions/{id}", e))
    }

    /// `POST /subscriptions` (answered `201`).
    pub async fn create_subscription(&self, s: &Subscription) -> Result<SubscriptionDetails, ApiError> {
        let request = Subscription { id: None, ..s.clone() };
        let body = serde_json::to_vec(&request).map_err(|e| ApiError::Request(e.to_string()))?;
        let (_, body) = self.call(Method::POST, &self.subscriptions_url(), Some(body)).await?;
        serde_json::from_slice(&body).map_err(|e| body_error("POST /subscriptions", e))
    }

    /// `PUT /subscriptions/{id}`.
    pub async fn update_subscription(&self, id: &str, s: &Subscription) -> Result<SubscriptionDetails, ApiError> {
        let request = Subscription { id: None, ..s.clone() };
        let body = serde_json::to_vec(&request).map_err(|e| ApiError::Request(e.to_string()))?;
        let (_, body) = self.call(Method::PUT, &self.subscription_url(id), Some(body)).await?;
        serde_json::from_slice(&body).map_err(|e| body_error("PUT /subscriptions/{id}", e))
    }

    /// `DELETE /subscriptions/{id}` (answered `204`).
    pub async fn delete_subscription(&self, id: &str) -> Result<(), ApiError> {
        self.call(Method::DELETE, &self.subscription_url(id), None).await.map(drop)
    }

    /// `GET /fieldmappings`: every field of every subject.
    pub async fn field_mappings(&self) -> Result<Vec<FieldMapping>, ApiError> {
        let (_, body) = self.call(Method::GET, &format!("{}/fieldmappings", self.base_url()), None).await?;
        serde_json::from_slice(&body).map_err(|e| body_error("GET /fieldmappings", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_leniently() {
        // `children` holding a string and an empty `anotherValue` object, as in the API's
        // own examples; unknown members ignored.
        let text = r#"[{"id":"A","name":"s1","subjectType":"CLEARING","subscriberId":"X","active":true,"extra":1,
            "specifications":[{"id":"B","type":"FIELD","operator":"WHERE","fieldMapping":{"id":"C","name":"purchaseRequest.rcnAlias",
            "displayName":"d","subjectType":"CLEARING","contentType":"TEXT"},"fieldOperator":"EQUALS",
            "expectedContent":{"contentType":"TEXT","value":"Travel","anotherValue":{}},"children":["string"]}]},
            {"name":"s2","subjectType":"PAYMENT_UPDATE","active":false,"specifications":null}]"#;
        let list: Vec<SubscriptionDetails> = serde_json::from_str(text).unwrap();
        assert_eq!(list.len(), 2);
        let spec = &list[0].specifications[0];
        assert_eq!(spec.field_mapping.as_ref().unwrap().name, "purchaseRequest.rcnAlias");
        assert!(spec.children.is_empty());
        let request = list[0].to_request();
        assert_eq!(request.specifications[0].field_mapping_name, "purchaseRequest.rcnAlias");
        assert!(list[1].specifications.is_empty());
    }

    #[test]
    fn requests_use_the_api_names() {
        let s = Subscription {
            id: Some("ignored".into()),
            name: "ops".into(),
            subject_type: "CLEARING".into(),
            active: true,
            specifications: vec![Specification {
                kind: "FIELD".into(),
                operator: "WHERE".into(),
                field_mapping_name: "purchaseRequest.rcnAlias".into(),
                field_operator: "EQUALS".into(),
                expected_content: FieldContent { content_type: "TEXT".into(), value: "x".into(), another_value: None },
                children: vec![],
            }],
        };
        let v = serde_json::to_value(Subscription { id: None, ..s }).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name":"ops","subjectType":"CLEARING","active":true,"specifications":[
                {"type":"FIELD","operator":"WHERE","fieldMappingName":"purchaseRequest.rcnAlias","fieldOperator":"EQUALS",
                 "expectedContent":{"contentType":"TEXT","value":"x"}}]})
        );
    }
}
