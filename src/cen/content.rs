//! Typed views of the seven subjects' `content` (SPEC 10).
//!
//! The pipeline never needs these to move a notification — it carries the original JSON —
//! but they document the wire format, let the simulator generate realistic content, and
//! let a sink or a test read fields by name. They are lenient: numbers may arrive as strings
//! and back, and every member not declared here is kept in `extra`.
//!
//! Leniency, concretely (the published examples disagree with the published schemas):
//! - numeric-looking members (amounts, ids, codes, `MMDD` dates) are [`NumOrString`], which
//!   accepts either form and writes back the form it read;
//! - flag members are [`BoolOrString`] (`false`, `"false"` and `"T"` all occur);
//! - members that are an object in the schema but an array in an example are [`OneOrMany`];
//! - every struct keeps undeclared members in `extra`, so parse → serialise gives back the
//!   same JSON.
//!
//! One exception to that round trip: a declared member whose value is `null` reads as `None`
//! and is left out when written back. SPEC 3 drops null members before hashing, so the
//! notification id does not change; the pipeline itself forwards the original text anyway.
//!
//! A member whose JSON type fits none of these (say, an object where a string is declared)
//! makes [`Content::parse`] fail; nothing else depends on that parse.
//!
//! [`mask_pan`] and [`mask_json`] implement SPEC G6 for debug output: card numbers are shown
//! with their last four digits only. The `Debug` of [`Content`] is masked that way; the
//! per-subject structs derive a plain `Debug` (for tests), so log [`Content`] or
//! [`mask_json`] output, not the structs themselves.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use lenient::{BoolOrString, NumOrString, OneOrMany};

pub mod lenient {
    //! Types and deserialisers that accept a value in the form the examples use as well as
    //! the form the schema declares, and write it back in the form it came in.

    use std::fmt;

    use serde::{Deserialize, Deserializer, Serialize};
    use serde_json::{Number, Value};

    /// An optional unsigned integer, given as a number or a numeric string.
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a non-negative integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a non-negative integer"))),
            Some(other) => Err(serde::de::Error::custom(format!("expected an integer, got {other}"))),
        }
    }

    /// A scalar that is a JSON number or a JSON string, kept in the form it arrived in.
    ///
    /// Used for amounts, ids and codes: the schema says `'0110'` and the example says
    /// `110`, or the schema says `integer` and the example says `'64456'`. A string keeps
    /// its leading zeros and spaces; a number keeps its JSON value.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum NumOrString {
        Num(Number),
        Str(String),
    }

    impl NumOrString {
        /// The string, when it arrived as one.
        pub fn as_str(&self) -> Option<&str> {
            match self {
                NumOrString::Str(s) => Some(s),
                NumOrString::Num(_) => None,
            }
        }

        /// The number, when it arrived as one.
        pub fn as_number(&self) -> Option<&Number> {
            match self {
                NumOrString::Num(n) => Some(n),
                NumOrString::Str(_) => None,
            }
        }

        /// As an unsigned integer: a number that is one, or a string of one (surrounding
        /// spaces ignored, because fixed-width fields arrive padded).
        pub fn as_u64(&self) -> Option<u64> {
            match self {
                NumOrString::Num(n) => n.as_u64(),
                NumOrString::Str(s) => s.trim().parse().ok(),
            }
        }

        /// As a signed integer, read the same way as [`NumOrString::as_u64`].
        pub fn as_i64(&self) -> Option<i64> {
            match self {
                NumOrString::Num(n) => n.as_i64(),
                NumOrString::Str(s) => s.trim().parse().ok(),
            }
        }

        /// As a double: amounts may carry decimals (`12.3`) although the schema says minor
        /// units.
        pub fn as_f64(&self) -> Option<f64> {
            match self {
                NumOrString::Num(n) => n.as_f64(),
                NumOrString::Str(s) => s.trim().parse().ok(),
            }
        }
    }

    /// The value as it appears on the wire, without the quotes of a string.
    impl fmt::Display for NumOrString {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                NumOrString::Num(n) => write!(f, "{n}"),
                NumOrString::Str(s) => f.write_str(s),
            }
        }
    }

    impl From<&str> for NumOrString {
        fn from(s: &str) -> Self {
            NumOrString::Str(s.to_owned())
        }
    }

    impl From<String> for NumOrString {
        fn from(s: String) -> Self {
            NumOrString::Str(s)
        }
    }

    impl From<u64> for NumOrString {
        fn from(n: u64) -> Self {
            NumOrString::Num(n.into())
        }
    }

    impl From<i64> for NumOrString {
        fn from(n: i64) -> Self {
            NumOrString::Num(n.into())
        }
    }

    impl From<Number> for NumOrString {
        fn from(n: Number) -> Self {
            NumOrString::Num(n)
        }
    }

    /// A flag that is a JSON boolean or a string, kept in the form it arrived in.
    ///
    /// The clearing schema declares `reversalIndicator` boolean with example `'false'`,
    /// and `isMatched`/`isMastercardSwitched` strings with examples `'true'`, `S` and `T`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum BoolOrString {
        Bool(bool),
        Str(String),
    }

    impl BoolOrString {
        /// The flag, when it can be read as one: a boolean, or `true`/`false`/`T`/`F`/`Y`/`N`
        /// in any case. Other strings (the example's `isMatched: S`) are `None`.
        pub fn as_bool(&self) -> Option<bool> {
            match self {
                BoolOrString::Bool(b) => Some(*b),
                BoolOrString::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "t" | "y" | "yes" => Some(true),
                    "false" | "f" | "n" | "no" => Some(false),
                    _ => None,
                },
            }
        }
    }

    impl From<bool> for BoolOrString {
        fn from(b: bool) -> Self {
            BoolOrString::Bool(b)
        }
    }

    /// A member the schema declares as one object but an example sends as an array of them
    /// (`statusReasonInformation` in PAYMENT_UPDATE). Written back in the shape it came in.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum OneOrMany<T> {
        // `Many` is tried first so an array is never mistaken for a single item.
        Many(Vec<T>),
        One(T),
    }

    impl<T> OneOrMany<T> {
        /// The items, one or many, as a slice.
        pub fn as_slice(&self) -> &[T] {
            match self {
                OneOrMany::Many(items) => items,
                OneOrMany::One(item) => std::slice::from_ref(item),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Subjects
// ---------------------------------------------------------------------------------------

/// A notification's `subject`: the event type, which decides the shape of `content`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    PaymentAuthorization,
    Clearing,
    BpcPaymentAuthorization,
    BpcClearing,
    PaymentUpdate,
    TokenLifecycleEvent,
    TokenProvisioningEvent,
    /// A subject this build does not know; kept so that new event types pass through.
    Unknown(String),
}

impl Subject {
    /// The seven subjects SPEC 10 names.
    pub const ALL: [Subject; 7] = [
        Subject::PaymentAuthorization,
        Subject::Clearing,
        Subject::BpcPaymentAuthorization,
        Subject::BpcClearing,
        Subject::PaymentUpdate,
        Subject::TokenLifecycleEvent,
        Subject::TokenProvisioningEvent,
    ];

    /// The name on the wire, e.g. `BPC_CLEARING`.
    pub fn as_str(&self) -> &str {
        match self {
            Subject::PaymentAuthorization => "PAYMENT_AUTHORIZATION",
            Subject::Clearing => "CLEARING",
            Subject::BpcPaymentAuthorization => "BPC_PAYMENT_AUTHORIZATION",
            Subject::BpcClearing => "BPC_CLEARING",
            Subject::PaymentUpdate => "PAYMENT_UPDATE",
            Subject::TokenLifecycleEvent => "TOKEN_LIFECYCLE_EVENT",
            Subject::TokenProvisioningEvent => "TOKEN_PROVISIONING_EVENT",
            Subject::Unknown(name) => name,
        }
    }

    /// Reads a wire name. Matching is exact, as the API spells subjects in one way only;
    /// anything else is [`Subject::Unknown`].
    pub fn from_wire(name: &str) -> Subject {
        Subject::ALL.into_iter().find(|s| s.as_str() == name).unwrap_or_else(|| Subject::Unknown(name.to_owned()))
    }

    /// Whether the subject carries an `idempotencyKey` in its envelope (the token events).
    pub fn has_idempotency_key(&self) -> bool {
        matches!(self, Subject::TokenLifecycleEvent | Subject::TokenProvisioningEvent)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------
// Parts shared by several subjects
// ---------------------------------------------------------------------------------------

/// A real (funding) or virtual card. ICCP authorizations send `expiryMonth`/`expiryYear`,
/// clearing and BPC send `expiry`, BPC adds `accountGuid`; one struct covers all of them.
/// `number` is normally masked by Mastercard, but BPC examples show it in clear.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<NumOrString>,
    /// `YYMM` (BPC), `YYYY-MM` (clearing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_month: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_year: Option<NumOrString>,
    /// Business Payment Controls card GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_guid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An amount with its currency. Most amounts use `amount`; the clearing acceptor amount
/// uses `value`. Amounts are in minor units by the schema, but examples carry decimals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Amount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<NumOrString>,
    /// ISO 4217 numeric code, e.g. `'840'` (or `840`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<NumOrString>,
    /// ISO 4217 alphabetic code, e.g. `USD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_code_alphabetic: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The acceptor (merchant) in clearing and BPC messages. The union of both schemas' members:
/// clearing sends the address, BPC the point-of-sale details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acceptor {
    /// DE 42, acceptor id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_merchant_name: Option<String>,
    /// DE 41.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<NumOrString>,
    /// DE 18, the MCC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_category_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_category_code_description: Option<String>,
    /// DE 37.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_reference_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_division_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code_description: Option<String>,
    /// DE 22 subfield 1 (BPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<NumOrString>,
    /// DE 13, `MMDD` (BPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_date: Option<NumOrString>,
    /// DE 12, `hhmmss` (BPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_time: Option<NumOrString>,
    /// DE 61 subfield 13 (BPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_country_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_country_code_description: Option<String>,
    /// DE 61 subfield 7 (BPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_transaction_status: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DE 90: identifies the original message of an advice or reversal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OriginalMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type_indicator: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_trace_audit_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmission_raw_date_time: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DE 60: why an advice message was sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Advice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The In Control purchase request behind a virtual card. Token events send only the
/// first three members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_request_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcn_alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_guid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The Business Payment Controls funding source that paid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FundingSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_source_alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_source_guid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------
// PAYMENT_AUTHORIZATION
// ---------------------------------------------------------------------------------------

/// `content` of a PAYMENT_AUTHORIZATION notification (schema
/// `ICCPAuthorizationNotificationContent`): an In Control authorization, advice or reversal
/// on a virtual card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IccpAuthorizationContent {
    /// MTI: `0110`, `0120`, `0400` or `0420`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type_indicator: Option<NumOrString>,
    /// DE 11 (STAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_trace_audit_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_network_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banknet_reference_number: Option<NumOrString>,
    /// Minor units of `transaction_currency_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_amount: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_currency_code: Option<NumOrString>,
    /// DE 6, minor units of `billing_currency_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_amount: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_currency_code: Option<NumOrString>,
    /// DE 39.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<NumOrString>,
    /// DE 38.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_code: Option<NumOrString>,
    /// DE 7 date, `MMDD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmission_raw_date: Option<NumOrString>,
    /// DE 7 time, `HHmmss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmission_raw_time: Option<NumOrString>,
    /// DE 15, `MMDD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_date: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_holder_transaction_type_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_transaction_status: Option<NumOrString>,
    /// Network code, Banknet reference and settlement date of the original 0110; padded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<Merchant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_payment_card: Option<PaymentCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_payment_card: Option<PaymentCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_control_on_behalf_service_result: Option<OnBehalfServiceResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_message: Option<OriginalMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_amounts: Option<ReplacementAmounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_request: Option<PurchaseRequest>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The merchant of an ICCP authorization (DE 42, DE 18, DE 43).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Merchant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_or_country_code: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// In Control on-behalf service results (DE 48 subelement 71).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnBehalfServiceResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcn_service_result_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcn_service_result_code: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DE 95: the amounts that replace the original ones in a partial reversal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementAmounts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_amount: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_amount: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_amount: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------
// CLEARING and BPC_CLEARING
// ---------------------------------------------------------------------------------------

/// `content` of a CLEARING notification (schema `ICCPClearingNotificationContent`): a
/// clearing record matched (or not) to an In Control authorization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IccpClearingContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearing_transaction_id: Option<NumOrString>,
    /// `type` on the wire: `D` (debit) or `C` (credit).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquirer_reference_data: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type_id: Option<NumOrString>,
    /// e.g. `First Presentment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mastercard_switched: Option<BoolOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_reason_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_transaction_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_rate_cardholder_billing: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_pan: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_entry_mode: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time_transaction_local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal_indicator: Option<BoolOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_matched: Option<BoolOrString>,
    /// `O` (original) or `L` (linked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_or_linked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls_applied_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banknet_reference_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_institution_id_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquirer_institution_id_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_institution_id_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_holder_amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<ClearingAuthorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_payment_card: Option<PaymentCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_payment_card: Option<PaymentCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor: Option<Acceptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_request: Option<PurchaseRequest>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The authorization a clearing record was matched to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClearingAuthorization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_transaction_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_trace_audit_number: Option<NumOrString>,
    /// `type` on the wire.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor_local_date: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor_local_time: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mt_id_type: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_holder_amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_on_balance: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor_amount: Option<Amount>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `content` of a BPC_CLEARING notification: a clearing record for a Business Payment
/// Controls card.
///
/// The public OpenAPI file has no schema for it (SPEC 10), so this is the CLEARING content
/// plus the members that identify BPC ownership in BPC authorizations. Cards'
/// `accountGuid` is already in [`PaymentCard`]. Members declared by neither land in
/// `clearing.extra`: a second catch-all here would receive the clearing members a second
/// time, because serde hands every flattened map all the members the outer struct did not
/// declare.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BpcClearingContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_source: Option<FundingSource>,
    /// Every CLEARING member, and every member nobody declares (in `clearing.extra`).
    #[serde(flatten)]
    pub clearing: IccpClearingContent,
}

// ---------------------------------------------------------------------------------------
// BPC_PAYMENT_AUTHORIZATION
// ---------------------------------------------------------------------------------------

/// `content` of a BPC_PAYMENT_AUTHORIZATION notification (schema
/// `BPCAuthorizationNotificationContent`): an authorization on a virtual card issued by
/// Business Payment Controls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BpcAuthorizationContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type_indicator: Option<NumOrString>,
    /// Not in the schema, but in the published example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_trace_audit_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<Processor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_payment_card: Option<PaymentCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_payment_card: Option<PaymentCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor: Option<Acceptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_holder_amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_information: Option<TransactionInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_message: Option<OriginalMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_source: Option<FundingSource>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the processor (issuer side) decided on a BPC authorization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Processor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_id: Option<NumOrString>,
    /// Not in the schema, but in the published example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_date_time: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_network_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banknet_reference_number: Option<NumOrString>,
    /// DE 48 SF71 subfield 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_result: Option<String>,
    /// DE 48 SF71 subfield 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_service: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Network details of a BPC authorization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionInformation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquirer_institution_id_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_institution_id_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_rate_cardholder_billing: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_response: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_trace_audit_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal: Option<Reversal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_entry_mode: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DE 95 in a BPC partial reversal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reversal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_transaction_amount: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_settlement_amount: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_cardholder_amount: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------
// PAYMENT_UPDATE
// ---------------------------------------------------------------------------------------

/// `content` of a PAYMENT_UPDATE notification (schema
/// `BPSPaymentUpdateNotificationContent`): a status change of a Business Payment Service
/// payment instruction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BpsPaymentUpdateContent {
    /// Always `BPS` so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_request_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bps_transaction_id: Option<NumOrString>,
    /// `SUBMITTED`, `PENDING`, `RECEIVED`, `ACCEPTED`, `APPROVED` or `DECLINED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_identification: Option<TransactionIdentification>,
    /// An object in the schema, an array of them in the example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason_information: Option<OneOrMany<ReasonInformation>>,
    /// An object in the schema; taken as one or many like `status_reason_information`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<OneOrMany<ReasonInformation>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Identifies the authorization a BPS payment produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionIdentification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_reference_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_reference: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_date_time: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A reason code with its description (status reasons and errors of a BPS payment).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasonInformation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------
// TOKEN_LIFECYCLE_EVENT and TOKEN_PROVISIONING_EVENT
// ---------------------------------------------------------------------------------------

/// The token an ICMP event is about. `account_number` is masked by Mastercard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<NumOrString>,
    /// `YYYY-MM` in the schema, a full timestamp in the examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The wallet holding a token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_app_instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_element_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The virtual card a token stands for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VcnInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_info: Option<OwnerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Issuer and company owning a virtual card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_guid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The real (funding) card behind a virtual card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RcnInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `content` of a TOKEN_LIFECYCLE_EVENT notification (schema
/// `ICMPLifecycleNotificationContent`): a token was created, suspended, resumed or deleted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IcmpLifecycleContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_info: Option<TokenInfo>,
    /// e.g. `CLOUD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// e.g. `CREATED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_requestor_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension_reasons: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_info: Option<WalletInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcn_info: Option<VcnInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcn_info: Option<RcnInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_request: Option<PurchaseRequest>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `content` of a TOKEN_PROVISIONING_EVENT notification (schema
/// `ICMPProvisioningNotificationContent`): a wallet asked for (or got) a token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IcmpProvisioningContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_info: Option<TokenInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// e.g. `COMPLETED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_requestor_id: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// e.g. `ACCOUNT_ON_FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenized_meta_data: Option<TokenizedMetaData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_info: Option<WalletInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_provider_decisioning_info: Option<WalletProviderDecisioningInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcn_info: Option<VcnInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcn_info: Option<RcnInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_request: Option<PurchaseRequest>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the wallet told Mastercard when it asked for the token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenizedMetaData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_holder_data: Option<AccountHolderData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_account_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<DeviceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id_hash: Option<String>,
    /// A string in both the schema and the example, though it is a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_token_count: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_facing_entity_name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The cardholder as the wallet knows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountHolderData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_holder_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_holder_address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_holder_mobile_phone_number: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_holder_email_address: Option<String>,
    /// `latitude/longitude`, e.g. `38.63/-90.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_subdivision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A phone number split into dial-in code and number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumber {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_dial_in_code: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<NumOrString>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The device a token is provisioned to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_capture_technology: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// e.g. `PHONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_factor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imei: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso_device_type: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    /// `'4.4'` would read back as a number if sent unquoted, hence lenient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<NumOrString>,
    /// e.g. `["NFC"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_technology: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The wallet provider's risk assessment of a provisioning request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletProviderDecisioningInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_life_time: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_score: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_score: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_score: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation_reasons: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation_standard_version: Option<String>,
    /// e.g. `APPROVED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_decision: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------
// Content
// ---------------------------------------------------------------------------------------

/// A notification's `content`, typed by its subject.
#[derive(Clone, PartialEq)]
pub enum Content {
    PaymentAuthorization(IccpAuthorizationContent),
    Clearing(IccpClearingContent),
    BpcPaymentAuthorization(BpcAuthorizationContent),
    BpcClearing(BpcClearingContent),
    PaymentUpdate(BpsPaymentUpdateContent),
    TokenLifecycleEvent(IcmpLifecycleContent),
    TokenProvisioningEvent(IcmpProvisioningContent),
    /// A subject this build does not know: the content exactly as received.
    Unknown {
        subject: String,
        raw: Value,
    },
}

impl Content {
    /// Reads `content` according to `subject`. Fails when a known subject's content is not
    /// an object, or a member has a JSON type no leniency covers.
    pub fn parse(subject: &str, content: &Value) -> Result<Content, serde_json::Error> {
        Ok(match Subject::from_wire(subject) {
            Subject::PaymentAuthorization => {
                Content::PaymentAuthorization(IccpAuthorizationContent::deserialize(content)?)
            }
            Subject::Clearing => Content::Clearing(IccpClearingContent::deserialize(content)?),
            Subject::BpcPaymentAuthorization => {
                Content::BpcPaymentAuthorization(BpcAuthorizationContent::deserialize(content)?)
            }
            Subject::BpcClearing => Content::BpcClearing(BpcClearingContent::deserialize(content)?),
            Subject::PaymentUpdate => Content::PaymentUpdate(BpsPaymentUpdateContent::deserialize(content)?),
            Subject::TokenLifecycleEvent => Content::TokenLifecycleEvent(IcmpLifecycleContent::deserialize(content)?),
            Subject::TokenProvisioningEvent => {
                Content::TokenProvisioningEvent(IcmpProvisioningContent::deserialize(content)?)
            }
            Subject::Unknown(subject) => Content::Unknown { subject, raw: content.clone() },
        })
    }

    /// The subject this content belongs to.
    pub fn subject(&self) -> Subject {
        match self {
            Content::PaymentAuthorization(_) => Subject::PaymentAuthorization,
            Content::Clearing(_) => Subject::Clearing,
            Content::BpcPaymentAuthorization(_) => Subject::BpcPaymentAuthorization,
            Content::BpcClearing(_) => Subject::BpcClearing,
            Content::PaymentUpdate(_) => Subject::PaymentUpdate,
            Content::TokenLifecycleEvent(_) => Subject::TokenLifecycleEvent,
            Content::TokenProvisioningEvent(_) => Subject::TokenProvisioningEvent,
            Content::Unknown { subject, .. } => Subject::Unknown(subject.clone()),
        }
    }

    /// The content as JSON, in the form it was read in (except `null` members; see the
    /// module documentation).
    pub fn to_value(&self) -> Value {
        fn value<T: Serialize>(content: &T) -> Value {
            // These types hold only strings, numbers, booleans and string-keyed maps, which
            // always convert to a `Value`.
            serde_json::to_value(content).expect("content structs always convert to JSON")
        }
        match self {
            Content::PaymentAuthorization(c) => value(c),
            Content::Clearing(c) => value(c),
            Content::BpcPaymentAuthorization(c) => value(c),
            Content::BpcClearing(c) => value(c),
            Content::PaymentUpdate(c) => value(c),
            Content::TokenLifecycleEvent(c) => value(c),
            Content::TokenProvisioningEvent(c) => value(c),
            Content::Unknown { raw, .. } => raw.clone(),
        }
    }
}

/// Masked (SPEC G6): `Content` is what gets logged at debug level, so card numbers show
/// their last four digits only.
impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Content({}: {})", self.subject(), mask_json(&self.to_value()))
    }
}

// ---------------------------------------------------------------------------------------
// Masking (SPEC G6)
// ---------------------------------------------------------------------------------------

/// Card numbers (ISO/IEC 7812) are 12 to 19 digits long.
const PAN_DIGITS: std::ops::RangeInclusive<usize> = 12..=19;

/// Masks every run of 12–19 ASCII digits in `s` to `*`s followed by its last four digits,
/// keeping its length: `5555555555554444` → `************4444`. Shorter and longer runs
/// (STANs, 23-digit acquirer reference data) are left alone.
pub fn mask_pan(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let digits = &rest[start..];
        let len = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
        let run = &digits[..len];
        if PAN_DIGITS.contains(&len) {
            out.extend(std::iter::repeat_n('*', len - 4));
            out.push_str(&run[len - 4..]);
        } else {
            out.push_str(run);
        }
        rest = &digits[len..];
    }
    out.push_str(rest);
    out
}

/// A copy of `value` fit for debug output: every string has its 12–19 digit runs masked by
/// [`mask_pan`], and every integer of 12–19 digits becomes a masked string. Member names
/// are kept. Over-masking (a 15-digit merchant id) is accepted; a missed card number is not.
pub fn mask_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(mask_pan(s)),
        Value::Number(n) if n.is_u64() || n.is_i64() => {
            let digits = n.to_string();
            let unsigned = digits.trim_start_matches('-');
            if PAN_DIGITS.contains(&unsigned.len()) { Value::String(mask_pan(&digits)) } else { value.clone() }
        }
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), mask_json(v))).collect()),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cen::id::notification_id;
    use crate::cen::notification::Notification;
    use serde_json::json;

    /// One complete notification per subject, written for these tests (made-up values,
    /// masked test card numbers).
    const FIXTURES: [(&str, &str); 7] = [
        ("PAYMENT_AUTHORIZATION", include_str!("../../tests/fixtures/cen/PAYMENT_AUTHORIZATION.json")),
        ("CLEARING", include_str!("../../tests/fixtures/cen/CLEARING.json")),
        ("BPC_PAYMENT_AUTHORIZATION", include_str!("../../tests/fixtures/cen/BPC_PAYMENT_AUTHORIZATION.json")),
        ("BPC_CLEARING", include_str!("../../tests/fixtures/cen/BPC_CLEARING.json")),
        ("PAYMENT_UPDATE", include_str!("../../tests/fixtures/cen/PAYMENT_UPDATE.json")),
        ("TOKEN_LIFECYCLE_EVENT", include_str!("../../tests/fixtures/cen/TOKEN_LIFECYCLE_EVENT.json")),
        ("TOKEN_PROVISIONING_EVENT", include_str!("../../tests/fixtures/cen/TOKEN_PROVISIONING_EVENT.json")),
    ];

    fn fixture(subject: &str) -> Value {
        let (_, text) = FIXTURES.iter().find(|(name, _)| *name == subject).expect("a fixture for every subject");
        serde_json::from_str(text).expect("fixture is valid JSON")
    }

    fn parsed(subject: &str) -> Content {
        Content::parse(subject, &fixture(subject)["content"]).expect("fixture content parses")
    }

    fn num(n: u64) -> Option<NumOrString> {
        Some(NumOrString::from(n))
    }

    fn text(s: &str) -> Option<NumOrString> {
        Some(NumOrString::from(s))
    }

    #[test]
    fn there_is_one_fixture_per_subject() {
        let names: Vec<&str> = FIXTURES.iter().map(|(name, _)| *name).collect();
        let all: Vec<&str> = Subject::ALL.iter().map(Subject::as_str).collect();
        assert_eq!(names, all);
    }

    #[test]
    fn fixtures_are_valid_notifications() {
        for (name, text) in FIXTURES {
            let n = Notification::from_json(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(n.subject, name);
            let value = fixture(name);
            for member in ["subscriptionName", "pushStatus", "createdTimestamp"] {
                assert!(value[member].is_string(), "{name}: {member}");
            }
            let has_key = value.get("idempotencyKey").is_some();
            assert_eq!(has_key, Subject::from_wire(name).has_idempotency_key(), "{name}");
        }
    }

    #[test]
    fn every_fixture_round_trips_exactly() {
        for (name, _) in FIXTURES {
            let original = fixture(name)["content"].clone();
            let content = Content::parse(name, &original).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(content.subject().as_str(), name);
            assert_eq!(content.to_value(), original, "{name} changed in the round trip");
        }
    }

    #[test]
    fn payment_authorization_fields() {
        let Content::PaymentAuthorization(c) = parsed("PAYMENT_AUTHORIZATION") else {
            panic!("wrong variant");
        };
        assert_eq!(c.message_type_indicator, text("0420"));
        // A number written as a string, and a string written as a number, both readable.
        assert_eq!(c.transaction_amount, text("4215"));
        assert_eq!(c.transaction_amount.as_ref().and_then(NumOrString::as_u64), Some(4215));
        assert_eq!(c.billing_amount, num(4630));
        assert_eq!(c.settlement_date, num(314));
        assert_eq!(c.transaction_currency_code, text("EUR"));
        let merchant = c.merchant.expect("merchant");
        assert_eq!(merchant.category_code, text("4722"));
        assert_eq!(merchant.city.as_deref(), Some("Lyon        "));
        let card = c.virtual_payment_card.expect("virtual card");
        assert_eq!(card.number, text("************0005"));
        assert_eq!(card.expiry_year, text("27"));
        assert_eq!(c.in_control_on_behalf_service_result.and_then(|r| r.vcn_service_result_code).as_deref(), Some("V"));
        assert_eq!(c.advice.and_then(|a| a.reason_code), text("651"));
        assert_eq!(c.replacement_amounts.and_then(|r| r.billing_amount), num(2315));
        assert_eq!(c.purchase_request.and_then(|p| p.company_id), num(31337));
        assert_eq!(c.extra.get("networkAdviceFlag"), Some(&json!("N")));
        assert_eq!(c.extra.len(), 1);
    }

    #[test]
    fn clearing_fields() {
        let Content::Clearing(c) = parsed("CLEARING") else {
            panic!("wrong variant");
        };
        assert_eq!(c.kind.as_deref(), Some("D"));
        assert_eq!(c.clearing_transaction_id, num(5_550_123));
        assert_eq!(c.acquirer_reference_data, text("74012345678901234567890"));
        // Declared integer, sent as a string with a leading zero: the zero survives.
        assert_eq!(c.destination_institution_id_code, text("018456"));
        assert_eq!(c.conversion_rate_cardholder_billing.as_ref().and_then(NumOrString::as_f64), Some(1.0843));
        assert_eq!(c.reversal_indicator, Some(BoolOrString::Str("false".into())));
        assert_eq!(c.reversal_indicator.as_ref().and_then(BoolOrString::as_bool), Some(false));
        assert_eq!(c.is_matched.as_ref().and_then(BoolOrString::as_bool), Some(true));
        assert_eq!(c.is_mastercard_switched.as_ref().and_then(BoolOrString::as_bool), Some(true));
        // Declared string, sent as a number.
        let holder = c.card_holder_amount.expect("cardHolderAmount");
        assert_eq!(holder.currency_code, num(978));
        assert_eq!(holder.currency_code_alphabetic.as_deref(), Some("EUR"));
        let auth = c.authorization.expect("authorization");
        assert_eq!(auth.kind, num(0));
        assert_eq!(auth.mt_id_type, text("0100"));
        assert_eq!(auth.effect_on_balance.as_ref().and_then(NumOrString::as_f64), Some(42.15));
        let acceptor = c.acceptor.expect("acceptor");
        assert_eq!(acceptor.postal_code, text("69002"));
        assert_eq!(acceptor.amount.and_then(|a| a.value).and_then(|v| v.as_f64()), Some(46.3));
        assert_eq!(c.real_payment_card.and_then(|p| p.expiry), text("2029-11"));
        assert_eq!(c.extra.get("clearingCycle"), Some(&json!(3)));
        assert_eq!(c.extra.len(), 1);
    }

    #[test]
    fn bpc_authorization_fields() {
        let Content::BpcPaymentAuthorization(c) = parsed("BPC_PAYMENT_AUTHORIZATION") else {
            panic!("wrong variant");
        };
        assert_eq!(c.system_trace_audit_number, text("730194"));
        assert!(c.corp_guid.as_deref().is_some_and(|g| g.starts_with("FIXTUREBPCCORP")));
        let processor = c.processor.expect("processor");
        assert_eq!(processor.issuer_id, text("4417"));
        assert_eq!(processor.on_behalf_service, text("17"));
        assert_eq!(
            c.real_payment_card.and_then(|p| p.account_guid).as_deref(),
            Some("0ENTfixturerealcard000000000000000000000000000000000000000000000001")
        );
        let acceptor = c.acceptor.expect("acceptor");
        assert_eq!(acceptor.pos_country_code, text("826"));
        assert_eq!(acceptor.amount.and_then(|a| a.amount), num(18999));
        assert_eq!(c.card_holder_amount.and_then(|a| a.currency_code), num(840));
        let info = c.transaction_information.expect("transactionInformation");
        assert_eq!(info.forwarding_institution_id_code, num(770_098_765_400_021));
        let reversal = info.reversal.expect("reversal");
        assert_eq!(reversal.replacement_settlement_amount, text("000000000000"));
        assert_eq!(reversal.replacement_transaction_amount, num(0));
        assert_eq!(c.funding_source.and_then(|f| f.funding_source_alias).as_deref(), Some("Fixture Ops Budget"));
        assert_eq!(c.extra.get("spendControlName"), Some(&json!("office-supplies-cap")));
    }

    #[test]
    fn bpc_clearing_fields() {
        let Content::BpcClearing(c) = parsed("BPC_CLEARING") else {
            panic!("wrong variant");
        };
        assert!(c.issuer_guid.as_deref().is_some_and(|g| g.starts_with("FIXTUREBPCISSUER")));
        assert!(c.corp_guid.is_some());
        assert!(c.funding_source.is_some());
        // The clearing members are read through the flattened CLEARING struct.
        assert_eq!(c.clearing.clearing_transaction_id, text("7770456"));
        assert_eq!(c.clearing.is_mastercard_switched, Some(BoolOrString::Bool(true)));
        assert_eq!(c.clearing.is_matched.as_ref().and_then(BoolOrString::as_bool), None);
        assert_eq!(c.clearing.acceptor.as_ref().and_then(|a| a.merchant_category_code.clone()), num(5111));
        assert!(c.clearing.virtual_payment_card.as_ref().is_some_and(|v| v.account_guid.is_some()));
        // Only the undeclared member lands in the catch-all; the BPC members do not.
        let extra: Vec<&String> = c.clearing.extra.keys().collect();
        assert_eq!(extra, ["spendControlName"]);
    }

    #[test]
    fn payment_update_fields() {
        let Content::PaymentUpdate(c) = parsed("PAYMENT_UPDATE") else {
            panic!("wrong variant");
        };
        assert_eq!(c.status.as_deref(), Some("DECLINED"));
        assert_eq!(c.purchase_request_id, text("90417"));
        assert_eq!(c.transaction_identification.and_then(|t| t.transaction_reference), text("INV-2026-0318-17"));
        let reasons = c.status_reason_information.expect("statusReasonInformation");
        assert!(matches!(reasons, OneOrMany::Many(_)));
        assert_eq!(reasons.as_slice().len(), 2);
        assert_eq!(reasons.as_slice()[1].reason_code.as_deref(), Some("SUPPLIER_REVIEW"));
        assert_eq!(reasons.as_slice()[1].extra.get("reviewer"), Some(&json!("agent-7")));
        let errors = c.errors.expect("errors");
        assert!(matches!(errors, OneOrMany::One(_)));
        assert_eq!(errors.as_slice()[0].reason_code.as_deref(), Some("payment.instruction.rejected"));
        assert_eq!(c.extra.get("batchSequence"), Some(&json!(12)));
    }

    #[test]
    fn token_lifecycle_fields() {
        let Content::TokenLifecycleEvent(c) = parsed("TOKEN_LIFECYCLE_EVENT") else {
            panic!("wrong variant");
        };
        assert_eq!(c.event_type.as_deref(), Some("SUSPENDED"));
        assert_eq!(c.token_requestor_id, text("50199887766"));
        assert_eq!(c.suspension_reasons.as_deref(), Some(&["CARDHOLDER".to_owned(), "DEVICE_LOST".to_owned()][..]));
        assert_eq!(c.token_info.and_then(|t| t.account_number), text("************3331"));
        assert_eq!(c.wallet_info.and_then(|w| w.wallet_id), text("216"));
        let vcn = c.vcn_info.expect("vcnInfo");
        assert!(vcn.owner_info.and_then(|o| o.corp_guid).is_some());
        assert_eq!(c.rcn_info.and_then(|r| r.expiry), text("2029-11"));
        assert_eq!(c.purchase_request.and_then(|p| p.purchase_request_id), num(90417));
        assert!(c.extra.is_empty());
    }

    #[test]
    fn token_provisioning_fields() {
        let Content::TokenProvisioningEvent(c) = parsed("TOKEN_PROVISIONING_EVENT") else {
            panic!("wrong variant");
        };
        assert_eq!(c.source.as_deref(), Some("ACCOUNT_ON_FILE"));
        // Declared string, sent as a number.
        assert_eq!(c.token_requestor_id, num(50_122_334_455));
        let meta = c.tokenized_meta_data.expect("tokenizedMetaData");
        let holder = meta.account_holder_data.expect("accountHolderData");
        let address = holder.account_holder_address.expect("address");
        assert_eq!(address.line2.as_deref(), Some("Suite 200"));
        assert_eq!(address.postal_code, text("62701"));
        assert_eq!(holder.account_holder_mobile_phone_number.and_then(|p| p.country_dial_in_code), text("1"));
        let device = meta.device_info.expect("deviceInfo");
        assert_eq!(device.os_version.as_ref().and_then(NumOrString::as_f64), Some(14.1));
        assert_eq!(device.payment_types.map(|p| p.len()), Some(2));
        assert_eq!(meta.active_token_count.as_ref().and_then(NumOrString::as_u64), Some(3));
        let decision = c.wallet_provider_decisioning_info.expect("decisioning");
        assert_eq!(decision.recommended_decision.as_deref(), Some("APPROVED"));
        assert_eq!(decision.device_score, text("5"));
        assert_eq!(c.extra.get("tokenAssuranceLevel"), Some(&json!(2)));
    }

    #[test]
    fn lenient_scalars_write_back_the_form_they_read() {
        let content = json!({
            "transactionAmount": "0007550",
            "billingAmount": 75.5,
            "systemTraceAuditNumber": 11174,
            "responseCode": "00",
        });
        let parsed = Content::parse("PAYMENT_AUTHORIZATION", &content).expect("parses");
        assert_eq!(parsed.to_value(), content);
        let Content::PaymentAuthorization(c) = parsed else {
            panic!("wrong variant");
        };
        assert_eq!(c.transaction_amount.as_ref().map(ToString::to_string).as_deref(), Some("0007550"));
        assert_eq!(c.transaction_amount.as_ref().and_then(NumOrString::as_u64), Some(7550));
        assert_eq!(c.billing_amount.as_ref().map(ToString::to_string).as_deref(), Some("75.5"));
        assert_eq!(c.billing_amount.as_ref().and_then(NumOrString::as_u64), None);
        assert_eq!(c.system_trace_audit_number.as_ref().and_then(NumOrString::as_str), None);
        assert_eq!(c.response_code.as_ref().and_then(NumOrString::as_str), Some("00"));
    }

    #[test]
    fn one_or_many_keeps_its_shape() {
        for reasons in [
            json!({"reasonCode": "RC", "description": "one"}),
            json!([{"reasonCode": "RC", "description": "one"}]),
            json!([]),
        ] {
            let content = json!({"status": "APPROVED", "statusReasonInformation": reasons});
            let parsed = Content::parse("PAYMENT_UPDATE", &content).expect("parses");
            assert_eq!(parsed.to_value(), content);
        }
    }

    #[test]
    fn undeclared_members_are_kept_at_every_level() {
        let content = json!({
            "tokenType": "CLOUD",
            "newTopLevel": {"deep": [1, "two", null, {"x": true}]},
            "walletInfo": {"walletId": "9", "walletVendor": "fixture"},
            "purchaseRequest": {"purchaseRequestId": 1, "costCentre": "CC-1", "note": null},
        });
        let parsed = Content::parse("TOKEN_LIFECYCLE_EVENT", &content).expect("parses");
        assert_eq!(parsed.to_value(), content);
    }

    #[test]
    fn declared_null_members_read_as_absent_and_keep_the_id() {
        let notification = json!({
            "subject": "PAYMENT_AUTHORIZATION",
            "createdTimestamp": "2026-03-14T08:21:07.118Z",
            "content": {
                "messageTypeIndicator": "0110",
                "inControlOnBehalfServiceResult": {"rcnServiceResultCode": null, "vcnServiceResultCode": "V"},
                "undeclared": null,
            },
        });
        let parsed = Content::parse("PAYMENT_AUTHORIZATION", &notification["content"]).expect("parses");
        let Content::PaymentAuthorization(c) = &parsed else {
            panic!("wrong variant");
        };
        let result = c.in_control_on_behalf_service_result.as_ref().expect("present");
        assert_eq!(result.rcn_service_result_code, None);
        // The declared null is gone, the undeclared one is kept; the id is the same.
        let written = parsed.to_value();
        assert_eq!(
            written,
            json!({
                "messageTypeIndicator": "0110",
                "inControlOnBehalfServiceResult": {"vcnServiceResultCode": "V"},
                "undeclared": null,
            })
        );
        let mut rewritten = notification.clone();
        rewritten["content"] = written;
        assert_eq!(notification_id(&rewritten).expect("id"), notification_id(&notification).expect("id"));
    }

    #[test]
    fn unknown_subject_keeps_raw_content() {
        let raw = json!({"anything": [1, 2.5, "3", null], "nested": {"n": 12345678901234_u64}});
        let parsed = Content::parse("FUTURE_EVENT", &raw).expect("unknown subjects never fail");
        assert_eq!(parsed.subject(), Subject::Unknown("FUTURE_EVENT".into()));
        assert_eq!(parsed.to_value(), raw);
        // Even content that is not an object passes through untouched.
        let odd = json!("not an object");
        assert_eq!(Content::parse("FUTURE_EVENT", &odd).expect("kept").to_value(), odd);
    }

    #[test]
    fn non_object_content_of_a_known_subject_is_an_error() {
        for subject in Subject::ALL {
            for bad in [json!("text"), json!(42), json!([{"a": 1}]), json!(null), json!(true)] {
                assert!(Content::parse(subject.as_str(), &bad).is_err(), "{subject} accepted {bad}");
            }
        }
    }

    #[test]
    fn a_member_of_an_uncovered_type_is_an_error() {
        let content = json!({"merchant": "should be an object"});
        assert!(Content::parse("PAYMENT_AUTHORIZATION", &content).is_err());
    }

    #[test]
    fn empty_content_parses_and_default_writes_an_empty_object() {
        for subject in Subject::ALL {
            let parsed = Content::parse(subject.as_str(), &json!({})).expect("parses");
            assert_eq!(parsed.to_value(), json!({}), "{subject}");
        }
        assert_eq!(Content::Clearing(IccpClearingContent::default()).to_value(), json!({}));
    }

    #[test]
    fn subjects_round_trip_through_their_wire_names() {
        for subject in Subject::ALL {
            assert_eq!(Subject::from_wire(subject.as_str()), subject);
            assert_eq!(subject.to_string(), subject.as_str());
        }
        assert_eq!(Subject::from_wire("clearing"), Subject::Unknown("clearing".into()));
        let unknown = Subject::from_wire("NEW_THING");
        assert_eq!(unknown.as_str(), "NEW_THING");
        assert!(!Subject::ALL.contains(&unknown));
    }

    #[test]
    fn mask_pan_keeps_the_last_four_digits() {
        assert_eq!(mask_pan("5555555555554444"), "************4444");
        assert_eq!(mask_pan("555555555555"), "********5555");
        assert_eq!(mask_pan("5555555555555554444"), "***************4444");
        assert_eq!(
            mask_pan("card 5555555555554444 exp 2911, ref 4000056655665556"),
            "card ************4444 exp 2911, ref ************5556"
        );
        // Already masked, too short or too long to be a card number: unchanged.
        assert_eq!(mask_pan("************4444"), "************4444");
        assert_eq!(mask_pan("55555555555"), "55555555555");
        assert_eq!(mask_pan("55555555555555554444"), "55555555555555554444");
        assert_eq!(mask_pan("74012345678901234567890"), "74012345678901234567890");
        assert_eq!(mask_pan(""), "");
        assert_eq!(mask_pan("Zürich 5555555555554444"), "Zürich ************4444");
    }

    #[test]
    fn mask_json_masks_strings_and_integers_everywhere() {
        let value = json!({
            "realPaymentCard": {"number": "5555555555554444", "expiry": "2911"},
            "tokenPan": 5555555555554444_u64,
            "list": ["x 2223003122003222 y", 12, 1.5, null, true],
            "5555555555554444": "member names are not card data",
            "stan": "011174",
        });
        assert_eq!(
            mask_json(&value),
            json!({
                "realPaymentCard": {"number": "************4444", "expiry": "2911"},
                "tokenPan": "************4444",
                "list": ["x ************3222 y", 12, 1.5, null, true],
                "5555555555554444": "member names are not card data",
                "stan": "011174",
            })
        );
    }

    #[test]
    fn content_debug_output_is_masked() {
        let content = json!({"realPaymentCard": {"number": "5555555555554444"}});
        let parsed = Content::parse("BPC_PAYMENT_AUTHORIZATION", &content).expect("parses");
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("5555555555554444"), "{debug}");
        assert!(debug.contains("************4444"), "{debug}");
        assert!(debug.starts_with("Content(BPC_PAYMENT_AUTHORIZATION: "), "{debug}");
    }
}
