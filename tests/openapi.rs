//! The simulator's pages against the CEN OpenAPI response schemas (SPEC 9/10).
//!
//! The OpenAPI file (version 1.2.0) cannot be part of this repository, so this test restates
//! what it declares for `GET /notifications`: [`PAGE`] and [`NOTIFICATION`] for the
//! envelopes, and for each content schema every property as a path (`a.b`, `a[]` for array
//! items) and its declared JSON type. The file marks no property `required` and none
//! `nullable`: a field may be absent, but a present field has its declared type, and `null`
//! is not a string.
//!
//! The file's own examples disagree with its types in a few places (amounts with decimals
//! where it declares integers, an array where it declares an object, …). The simulator sends
//! what the examples send there, because that is what a poller meets; [`ALLOWED`] lists
//! exactly those places, each with the example's value type and why. Nothing else may
//! differ: an undeclared field or a field of another type fails the test, and so does an
//! allow-list entry the simulator no longer needs (the list cannot outlive the disagreement).
//!
//! `BPC_CLEARING` has no schema in the public file; SPEC 10 says to treat it as CLEARING
//! plus the Business Payment Controls fields, so it is checked against the clearing schema
//! plus [`BPC_CLEARING_EXTRA`], whose types are those of the same paths in the BPC
//! authorization schema.
//!
//! When the OpenAPI file is at hand (`CEN_OPENAPI=path`, or the development machine's copy
//! at `../shared/reference/cen-openapi.yml`), `tables_match_the_openapi_file` checks these
//! tables against it; elsewhere that test says on stderr that it did not run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use cen_poller::cen::SUBJECTS;
use cen_poller::cen::notification::format_timestamp;
use cen_poller::cen::oauth::encode_query_value;
use cen_poller::simulate::{SimConfig, start};
use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

/// A JSON type as OpenAPI names it. `Null` is never declared; it appears only as what an
/// example sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ty {
    Str,
    /// A JSON number without fraction or exponent.
    Int,
    /// Any JSON number (an integer is a number too).
    Num,
    Bool,
    Obj,
    Arr,
    Null,
}
use Ty::*;

impl Ty {
    fn of(v: &Value) -> Ty {
        match v {
            Value::String(_) => Str,
            Value::Number(n) if n.is_i64() || n.is_u64() => Int,
            Value::Number(_) => Num,
            Value::Bool(_) => Bool,
            Value::Object(_) => Obj,
            Value::Array(_) => Arr,
            Value::Null => Null,
        }
    }

    /// Whether a value of type `self` is valid where `declared` is declared.
    fn fits(self, declared: Ty) -> bool {
        self == declared || (self == Int && declared == Num)
    }
}

/// A schema as a list of (property path, declared type), in the file's order.
type Schema = &'static [(&'static str, Ty)];

/// `NotificationsWrapper`. The simulator sends every member (SPEC 10 lists them as the
/// response), so all are required here.
const PAGE: Schema = &[("count", Int), ("offset", Int), ("limit", Int), ("total", Int), ("notifications", Arr)];

/// `notification`, without `content` (checked against the subject's schema).
/// `idempotencyKey` is only for the two token subjects (checked separately).
const NOTIFICATION: Schema = &[
    ("subject", Str),
    ("subscriptionName", Str),
    ("pushStatus", Str),
    ("createdTimestamp", Str),
    ("idempotencyKey", Str),
    ("content", Obj),
];

const ICCP_AUTHORIZATION: Schema = &[
    ("messageTypeIndicator", Str),
    ("systemTraceAuditNumber", Str),
    ("financialNetworkCode", Str),
    ("banknetReferenceNumber", Str),
    ("transactionAmount", Num),
    ("transactionCurrencyCode", Str),
    ("billingAmount", Num),
    ("billingCurrencyCode", Str),
    ("responseCode", Str),
    ("authorizationCode", Str),
    ("transmissionRawDate", Str),
    ("transmissionRawTime", Str),
    ("settlementDate", Str),
    ("cardHolderTransactionTypeCode", Str),
    ("posTransactionStatus", Str),
    ("traceId", Str),
    ("merchant", Obj),
    ("merchant.merchantId", Str),
    ("merchant.categoryCode", Str),
    ("merchant.name", Str),
    ("merchant.city", Str),
    ("merchant.stateOrCountryCode", Str),
    ("realPaymentCard", Obj),
    ("realPaymentCard.number", Str),
    ("realPaymentCard.expiryMonth", Str),
    ("realPaymentCard.expiryYear", Str),
    ("virtualPaymentCard", Obj),
    ("virtualPaymentCard.number", Str),
    ("virtualPaymentCard.expiryMonth", Str),
    ("virtualPaymentCard.expiryYear", Str),
    ("inControlOnBehalfServiceResult", Obj),
    ("inControlOnBehalfServiceResult.rcnServiceResultCode", Str),
    ("inControlOnBehalfServiceResult.vcnServiceResultCode", Str),
    ("originalMessage", Obj),
    ("originalMessage.messageTypeIndicator", Str),
    ("originalMessage.systemTraceAuditNumber", Str),
    ("originalMessage.transmissionRawDateTime", Str),
    ("advice", Obj),
    ("advice.reasonCode", Str),
    ("replacementAmounts", Obj),
    ("replacementAmounts.transactionAmount", Num),
    ("replacementAmounts.settlementAmount", Num),
    ("replacementAmounts.billingAmount", Num),
    ("purchaseRequest", Obj),
    ("purchaseRequest.purchaseRequestId", Int),
    ("purchaseRequest.rcnAlias", Str),
    ("purchaseRequest.companyId", Int),
    ("purchaseRequest.companyGuid", Str),
    ("purchaseRequest.issuerGuid", Str),
];

const BPS_PAYMENT_UPDATE: Schema = &[
    ("source", Str),
    ("purchaseRequestId", Str),
    ("bpsTransactionId", Str),
    ("status", Str),
    ("updatedDate", Str),
    ("transactionIdentification", Obj),
    ("transactionIdentification.approvalCode", Str),
    ("transactionIdentification.retrievalReferenceNumber", Str),
    ("transactionIdentification.transactionReference", Str),
    ("transactionIdentification.transactionDateTime", Str),
    ("statusReasonInformation", Obj),
    ("statusReasonInformation.reasonCode", Str),
    ("statusReasonInformation.description", Str),
    ("errors", Obj),
    ("errors.reasonCode", Str),
    ("errors.description", Str),
];

const BPC_AUTHORIZATION: Schema = &[
    ("messageTypeIndicator", Str),
    ("traceId", Str),
    ("issuerGuid", Str),
    ("corpGuid", Str),
    ("processor", Obj),
    ("processor.issuerId", Int),
    ("processor.responseCode", Str),
    ("processor.financialNetworkCode", Str),
    ("processor.banknetReferenceNumber", Str),
    ("processor.onBehalfResult", Str),
    ("processor.onBehalfService", Str),
    ("realPaymentCard", Obj),
    ("realPaymentCard.number", Str),
    ("realPaymentCard.expiry", Str),
    ("realPaymentCard.accountGuid", Str),
    ("virtualPaymentCard", Obj),
    ("virtualPaymentCard.number", Str),
    ("virtualPaymentCard.expiry", Str),
    ("virtualPaymentCard.accountGuid", Str),
    ("acceptor", Obj),
    ("acceptor.name", Str),
    ("acceptor.cityName", Str),
    ("acceptor.subDivisionCode", Str),
    ("acceptor.terminalId", Str),
    ("acceptor.id", Str),
    ("acceptor.merchantCategoryCode", Str),
    ("acceptor.merchantCategoryCodeDescription", Str),
    ("acceptor.environment", Str),
    ("acceptor.localDate", Str),
    ("acceptor.localTime", Str),
    ("acceptor.retrievalReferenceNumber", Str),
    ("acceptor.posCountryCode", Str),
    ("acceptor.posCountryCodeDescription", Str),
    ("acceptor.posTransactionStatus", Str),
    ("acceptor.amount", Obj),
    ("acceptor.amount.amount", Num),
    ("acceptor.amount.currencyCode", Str),
    ("acceptor.amount.currencyCodeAlphabetic", Str),
    ("cardHolderAmount", Obj),
    ("cardHolderAmount.amount", Num),
    ("cardHolderAmount.currencyCode", Str),
    ("cardHolderAmount.currencyCodeAlphabetic", Str),
    ("transactionInformation", Obj),
    ("transactionInformation.acquirerInstitutionIdCode", Int),
    ("transactionInformation.forwardingInstitutionIdCode", Int),
    ("transactionInformation.conversionRateCardholderBilling", Num),
    ("transactionInformation.processingCode", Str),
    ("transactionInformation.authCode", Str),
    ("transactionInformation.dateTime", Str),
    ("transactionInformation.environment", Str),
    ("transactionInformation.issuerResponse", Str),
    ("transactionInformation.systemTraceAuditNumber", Str),
    ("transactionInformation.reversal", Obj),
    ("transactionInformation.reversal.replacementTransactionAmount", Num),
    ("transactionInformation.reversal.replacementSettlementAmount", Num),
    ("transactionInformation.reversal.replacementCardholderAmount", Num),
    ("transactionInformation.posEntryMode", Str),
    ("originalMessage", Obj),
    ("originalMessage.messageTypeIndicator", Str),
    ("originalMessage.systemTraceAuditNumber", Str),
    ("originalMessage.transmissionRawDateTime", Str),
    ("advice", Obj),
    ("advice.reasonCode", Str),
    ("fundingSource", Obj),
    ("fundingSource.fundingSourceAlias", Str),
    ("fundingSource.fundingSourceGuid", Str),
];

const ICCP_CLEARING: Schema = &[
    ("clearingTransactionId", Int),
    ("type", Str),
    ("acquirerReferenceData", Str),
    ("functionCode", Int),
    ("messageTypeId", Int),
    ("txnType", Str),
    ("isMastercardSwitched", Str),
    ("receiverId", Str),
    ("messageReasonCode", Int),
    ("originalTransactionId", Int),
    ("conversionRateCardholderBilling", Num),
    ("authCode", Str),
    ("processingCode", Str),
    ("tokenPan", Str),
    ("posEntryMode", Str),
    ("dateTimeTransactionLocal", Str),
    ("settlementAmount", Obj),
    ("settlementAmount.amount", Num),
    ("settlementAmount.currencyCode", Str),
    ("settlementAmount.currencyCodeAlphabetic", Str),
    ("reversalIndicator", Bool),
    ("isMatched", Str),
    ("originalOrLinked", Str),
    ("controlsAppliedDateTime", Str),
    ("banknetReferenceNumber", Str),
    ("destinationInstitutionIdCode", Int),
    ("acquirerInstitutionIdCode", Int),
    ("forwardingInstitutionIdCode", Int),
    ("cardHolderAmount", Obj),
    ("cardHolderAmount.amount", Int),
    ("cardHolderAmount.currencyCode", Str),
    ("cardHolderAmount.currencyCodeAlphabetic", Str),
    ("authorization", Obj),
    ("authorization.authorizationTransactionId", Int),
    ("authorization.systemTraceAuditNumber", Int),
    ("authorization.type", Int),
    ("authorization.acceptorLocalDate", Str),
    ("authorization.acceptorLocalTime", Str),
    ("authorization.mtIdType", Str),
    ("authorization.cardHolderAmount", Obj),
    ("authorization.cardHolderAmount.amount", Num),
    ("authorization.cardHolderAmount.currencyCode", Str),
    ("authorization.cardHolderAmount.currencyCodeAlphabetic", Str),
    ("authorization.effectOnBalance", Int),
    ("authorization.acceptorAmount", Obj),
    ("authorization.acceptorAmount.amount", Num),
    ("authorization.acceptorAmount.currencyCode", Str),
    ("authorization.acceptorAmount.currencyCodeAlphabetic", Str),
    ("virtualPaymentCard", Obj),
    ("virtualPaymentCard.number", Str),
    ("virtualPaymentCard.expiry", Str),
    ("realPaymentCard", Obj),
    ("realPaymentCard.number", Str),
    ("realPaymentCard.expiry", Str),
    ("acceptor", Obj),
    ("acceptor.merchantCategoryCode", Str),
    ("acceptor.merchantCategoryCodeDescription", Str),
    ("acceptor.id", Str),
    ("acceptor.terminalId", Str),
    ("acceptor.name", Str),
    ("acceptor.additionalMerchantName", Str),
    ("acceptor.retrievalReferenceNumber", Str),
    ("acceptor.streetAddress", Str),
    ("acceptor.cityName", Str),
    ("acceptor.subDivisionCode", Str),
    ("acceptor.postalCode", Str),
    ("acceptor.countryCode", Str),
    ("acceptor.countryCodeDescription", Str),
    ("acceptor.amount", Obj),
    ("acceptor.amount.value", Num),
    ("acceptor.amount.currencyCode", Str),
    ("acceptor.amount.currencyCodeAlphabetic", Str),
    ("purchaseRequest", Obj),
    ("purchaseRequest.purchaseRequestId", Int),
    ("purchaseRequest.rcnAlias", Str),
    ("purchaseRequest.companyId", Int),
    ("purchaseRequest.companyGuid", Str),
    ("purchaseRequest.issuerGuid", Str),
];

/// What `BPC_CLEARING` adds to the clearing schema (SPEC 10: "CLEARING plus BPC fields"):
/// the BPC authorization's GUIDs, card account GUIDs and funding source, with the types
/// that schema gives the same paths.
const BPC_CLEARING_EXTRA: Schema = &[
    ("issuerGuid", Str),
    ("corpGuid", Str),
    ("realPaymentCard.accountGuid", Str),
    ("virtualPaymentCard.accountGuid", Str),
    ("fundingSource", Obj),
    ("fundingSource.fundingSourceAlias", Str),
    ("fundingSource.fundingSourceGuid", Str),
];

/// `ICMPLifecycleNotificationContent`; the provisioning schema shares its first and last
/// parts ([`ICMP_COMMON`], [`ICMP_ACCOUNTS`]).
const ICMP_LIFECYCLE: Schema =
    &[("status", Str), ("suspensionReasons", Arr), ("suspensionReasons[]", Str), ("requestedBy", Str)];

const ICMP_PROVISIONING: Schema = &[
    ("source", Str),
    ("tokenizedMetaData", Obj),
    ("tokenizedMetaData.accountHolderData", Obj),
    ("tokenizedMetaData.accountHolderData.accountHolderName", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderAddress", Obj),
    ("tokenizedMetaData.accountHolderData.accountHolderAddress.city", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderAddress.country", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderAddress.countrySubdivision", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderAddress.line1", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderAddress.line2", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderAddress.postalCode", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderMobilePhoneNumber", Obj),
    ("tokenizedMetaData.accountHolderData.accountHolderMobilePhoneNumber.countryDialInCode", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderMobilePhoneNumber.phoneNumber", Str),
    ("tokenizedMetaData.accountHolderData.consumerIdentifier", Str),
    ("tokenizedMetaData.accountHolderData.accountHolderEmailAddress", Str),
    ("tokenizedMetaData.accountHolderData.deviceLocation", Str),
    ("tokenizedMetaData.accountHolderData.sourceIp", Str),
    ("tokenizedMetaData.paymentAccountReference", Str),
    ("tokenizedMetaData.deviceInfo", Obj),
    ("tokenizedMetaData.deviceInfo.cardCaptureTechnology", Str),
    ("tokenizedMetaData.deviceInfo.deviceName", Str),
    ("tokenizedMetaData.deviceInfo.formFactor", Str),
    ("tokenizedMetaData.deviceInfo.imei", Str),
    ("tokenizedMetaData.deviceInfo.isoDeviceType", Str),
    ("tokenizedMetaData.deviceInfo.msisdn", Str),
    ("tokenizedMetaData.deviceInfo.osName", Str),
    ("tokenizedMetaData.deviceInfo.osVersion", Str),
    ("tokenizedMetaData.deviceInfo.paymentTypes", Arr),
    ("tokenizedMetaData.deviceInfo.paymentTypes[]", Str),
    ("tokenizedMetaData.deviceInfo.serialNumber", Str),
    ("tokenizedMetaData.deviceInfo.storageTechnology", Str),
    ("tokenizedMetaData.accountIdHash", Str),
    ("tokenizedMetaData.activeTokenCount", Str),
    ("tokenizedMetaData.consumerFacingEntityName", Str),
    ("walletProviderDecisioningInfo", Obj),
    ("walletProviderDecisioningInfo.accountLifeTime", Str),
    ("walletProviderDecisioningInfo.accountScore", Str),
    ("walletProviderDecisioningInfo.deviceScore", Str),
    ("walletProviderDecisioningInfo.phoneNumberScore", Str),
    ("walletProviderDecisioningInfo.recommendationReasons", Arr),
    ("walletProviderDecisioningInfo.recommendationReasons[]", Str),
    ("walletProviderDecisioningInfo.recommendationStandardVersion", Str),
    ("walletProviderDecisioningInfo.recommendedDecision", Str),
];

/// The properties both token schemas declare, with the same types.
const ICMP_COMMON: Schema = &[
    ("tokenInfo", Obj),
    ("tokenInfo.accountNumber", Str),
    ("tokenInfo.expiry", Str),
    ("tokenInfo.accountGuid", Str),
    ("tokenInfo.createdDate", Str),
    ("tokenInfo.activatedDate", Str),
    ("tokenInfo.lastUpdatedDate", Str),
    ("tokenType", Str),
    ("eventType", Str),
    ("tokenRequestorId", Str),
    ("correlationId", Str),
    ("reasonCode", Str),
    ("walletInfo", Obj),
    ("walletInfo.walletId", Str),
    ("walletInfo.paymentAppInstanceId", Str),
    ("walletInfo.secureElementId", Str),
];

/// The account and purchase request parts of both token schemas.
const ICMP_ACCOUNTS: Schema = &[
    ("vcnInfo", Obj),
    ("vcnInfo.accountGuid", Str),
    ("vcnInfo.ownerInfo", Obj),
    ("vcnInfo.ownerInfo.issuerGuid", Str),
    ("vcnInfo.ownerInfo.corpGuid", Str),
    ("vcnInfo.createdDate", Str),
    ("vcnInfo.lastUpdatedDate", Str),
    ("vcnInfo.accountNumber", Str),
    ("vcnInfo.expiry", Str),
    ("rcnInfo", Obj),
    ("rcnInfo.accountGuid", Str),
    ("rcnInfo.accountNumber", Str),
    ("rcnInfo.expiry", Str),
    ("purchaseRequest", Obj),
    ("purchaseRequest.purchaseRequestId", Int),
    ("purchaseRequest.rcnAlias", Str),
    ("purchaseRequest.companyId", Int),
];

/// The OpenAPI schema a subject's content follows, and the tables that make it up.
fn schema_of(subject: &str) -> (&'static str, Vec<Schema>) {
    match subject {
        "PAYMENT_AUTHORIZATION" => ("ICCPAuthorizationNotificationContent", vec![ICCP_AUTHORIZATION]),
        "CLEARING" => ("ICCPClearingNotificationContent", vec![ICCP_CLEARING]),
        "BPC_PAYMENT_AUTHORIZATION" => ("BPCAuthorizationNotificationContent", vec![BPC_AUTHORIZATION]),
        "BPC_CLEARING" => ("ICCPClearingNotificationContent", vec![ICCP_CLEARING, BPC_CLEARING_EXTRA]),
        "PAYMENT_UPDATE" => ("BPSPaymentUpdateNotificationContent", vec![BPS_PAYMENT_UPDATE]),
        "TOKEN_LIFECYCLE_EVENT" => {
            ("ICMPLifecycleNotificationContent", vec![ICMP_COMMON, ICMP_LIFECYCLE, ICMP_ACCOUNTS])
        }
        "TOKEN_PROVISIONING_EVENT" => {
            ("ICMPProvisioningNotificationContent", vec![ICMP_COMMON, ICMP_PROVISIONING, ICMP_ACCOUNTS])
        }
        other => panic!("no schema for subject {other:?}: add it to schema_of"),
    }
}

/// A place where the OpenAPI file's example for `schema` sends `path` as `sent` although
/// the schema declares another type (or does not declare the path at all).
struct Allowed {
    schema: &'static str,
    path: &'static str,
    sent: Ty,
    why: &'static str,
}

/// Every place the simulator may differ from the declared types, because the file's own
/// example differs there. Where an example sends an array for a declared object, each
/// element is checked against the object's declared properties.
const ALLOWED: &[Allowed] = &[
    Allowed {
        schema: "ICCPAuthorizationNotificationContent",
        path: "inControlOnBehalfServiceResult.rcnServiceResultCode",
        sent: Null,
        why: "declared string; the example sends null",
    },
    Allowed {
        schema: "ICCPClearingNotificationContent",
        path: "destinationInstitutionIdCode",
        sent: Str,
        why: "declared integer; the example sends a string of digits",
    },
    Allowed {
        schema: "ICCPClearingNotificationContent",
        path: "cardHolderAmount.amount",
        sent: Num,
        why: "declared integer; the example sends an amount with decimals, like every other amount",
    },
    Allowed {
        schema: "ICCPClearingNotificationContent",
        path: "authorization.effectOnBalance",
        sent: Num,
        why: "declared integer; the example sends an amount with decimals",
    },
    Allowed {
        schema: "BPCAuthorizationNotificationContent",
        path: "systemTraceAuditNumber",
        sent: Str,
        why: "not declared; the example sends it (as the ICCP authorization declares it)",
    },
    Allowed {
        schema: "BPCAuthorizationNotificationContent",
        path: "processor.appliedDateTime",
        sent: Str,
        why: "not declared; the example sends it",
    },
    Allowed {
        schema: "BPSPaymentUpdateNotificationContent",
        path: "statusReasonInformation",
        sent: Arr,
        why: "declared an object; the example sends an array of such objects",
    },
    Allowed {
        schema: "BPSPaymentUpdateNotificationContent",
        path: "errors",
        sent: Null,
        why: "declared an object; the example sends null",
    },
];

/// What one walk over a page found.
#[derive(Default)]
struct Report {
    problems: Vec<String>,
    /// Indices into [`ALLOWED`] that some value needed.
    allowances_used: BTreeSet<usize>,
    /// Notifications seen per subject.
    subjects: BTreeMap<String, usize>,
}

impl Report {
    fn problem(&mut self, at: &str, what: String) {
        if self.problems.len() < 50 {
            self.problems.push(format!("{at}: {what}"));
        }
    }
}

/// Checks `v` at `path` of content schema `schema` (declared: `tables`).
fn check_value(report: &mut Report, at: &str, schema: &str, tables: &[Schema], path: &str, v: &Value) {
    let declared = tables.iter().flat_map(|t| t.iter()).find(|(p, _)| *p == path).map(|(_, t)| *t);
    let sent = Ty::of(v);
    if declared.is_some_and(|d| sent.fits(d)) {
        descend(report, at, schema, tables, path, v);
        return;
    }
    let allowed = ALLOWED.iter().position(|a| a.schema == schema && a.path == path && a.sent == sent);
    let Some(k) = allowed else {
        let what = match declared {
            Some(d) => format!("{sent:?} where the schema declares {d:?}"),
            None => format!("{sent:?} in a field the schema does not declare"),
        };
        report.problem(&format!("{at} content.{path}"), what);
        return;
    };
    report.allowances_used.insert(k);
    match (declared, v) {
        // An array sent for a declared object: each element is such an object.
        (Some(Obj), Value::Array(items)) => {
            for (n, item) in items.iter().enumerate() {
                if item.is_object() {
                    descend(report, at, schema, tables, path, item);
                } else {
                    report.problem(&format!("{at} content.{path}[{n}]"), format!("{:?}, not an object", Ty::of(item)));
                }
            }
        }
        _ => descend(report, at, schema, tables, path, v),
    }
}

/// Checks the members of an object or the items of an array at `path`.
fn descend(report: &mut Report, at: &str, schema: &str, tables: &[Schema], path: &str, v: &Value) {
    match v {
        Value::Object(members) => {
            for (k, member) in members {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                check_value(report, at, schema, tables, &child, member);
            }
        }
        Value::Array(items) => {
            let child = format!("{path}[]");
            for item in items {
                check_value(report, at, schema, tables, &child, item);
            }
        }
        _ => {}
    }
}

/// Checks a page envelope, each notification's envelope, and each content.
fn check_page(report: &mut Report, page: &Value, at: &str) {
    let Some(members) = page.as_object() else {
        return report.problem(at, "the page is not an object".into());
    };
    for (k, v) in members {
        match PAGE.iter().find(|(p, _)| p == k) {
            Some((_, d)) if Ty::of(v).fits(*d) => {}
            Some((_, d)) => report.problem(&format!("{at} {k}"), format!("{:?} where {d:?} is declared", Ty::of(v))),
            None => report.problem(&format!("{at} {k}"), "not a member of NotificationsWrapper".into()),
        }
    }
    for (k, _) in PAGE {
        if !members.contains_key(*k) {
            report.problem(&format!("{at} {k}"), "missing".into());
        }
    }
    let notifications = page["notifications"].as_array().map(Vec::as_slice).unwrap_or_default();
    if page["count"].as_u64() != Some(notifications.len() as u64) {
        report.problem(&format!("{at} count"), format!("{} for {} notifications", page["count"], notifications.len()));
    }
    for (n, notification) in notifications.iter().enumerate() {
        check_notification(report, notification, &format!("{at} notifications[{n}]"));
    }
}

fn check_notification(report: &mut Report, notification: &Value, at: &str) {
    let Some(members) = notification.as_object() else {
        return report.problem(at, "not an object".into());
    };
    let subject = notification["subject"].as_str().unwrap_or("?").to_owned();
    let at = format!("{at} ({subject})");
    for (k, v) in members {
        match NOTIFICATION.iter().find(|(p, _)| p == k) {
            Some((_, d)) if Ty::of(v).fits(*d) => {}
            Some((_, d)) => report.problem(&format!("{at} {k}"), format!("{:?} where {d:?} is declared", Ty::of(v))),
            None => report.problem(&format!("{at} {k}"), "not a member of notification".into()),
        }
    }
    for (k, _) in NOTIFICATION.iter().filter(|(k, _)| *k != "idempotencyKey") {
        if !members.contains_key(*k) {
            report.problem(&format!("{at} {k}"), "missing".into());
        }
    }
    // "This field is only available for ICMP events" (the file's description of it).
    let token = subject.starts_with("TOKEN_");
    if members.contains_key("idempotencyKey") != token {
        report.problem(&format!("{at} idempotencyKey"), format!("present: {}, token event: {token}", !token));
    }
    if !SUBJECTS.contains(&subject.as_str()) {
        return report.problem(&format!("{at} subject"), "not one of the seven subjects".into());
    }
    *report.subjects.entry(subject.clone()).or_default() += 1;
    let (schema, tables) = schema_of(&subject);
    if let Some(content) = notification.get("content").filter(|c| c.is_object()) {
        descend(report, &at, schema, &tables, "", content);
    }
}

/// Every page of a bounded stream holding every subject (conditional fields included:
/// reversals, suspensions, declined updates), read as the API returns it, checked against
/// the tables.
#[tokio::test]
async fn simulated_pages_follow_the_openapi_schemas() {
    let count = 3000;
    let begin = (Utc::now() - TimeDelta::hours(2)).duration_trunc(TimeDelta::seconds(1)).unwrap();
    let config = SimConfig::bounded(17, begin, 5.0, count);
    let (_sim, addr, _) = start(config).await;
    let client = reqwest::Client::new();
    let (s, e) = (encode_query_value(&format_timestamp(begin)), encode_query_value(&format_timestamp(Utc::now())));
    let mut report = Report::default();
    let (mut offset, limit) = (0, 500);
    loop {
        let url = format!(
            "http://{addr}/commercial-event-notifications/notifications?start={s}&end={e}&offset={offset}&limit={limit}"
        );
        let response = client.get(&url).send().await.expect("GET /notifications");
        assert_eq!(response.status(), 200, "{url}");
        let page: Value = serde_json::from_str(&response.text().await.expect("body")).expect("a JSON page");
        check_page(&mut report, &page, &format!("page at offset {offset}:"));
        offset += limit;
        if offset >= page["total"].as_u64().expect("total") {
            break;
        }
    }
    assert!(
        report.problems.is_empty(),
        "the simulator's pages disagree with the OpenAPI schemas:\n{}",
        report.problems.join("\n")
    );
    assert_eq!(report.subjects.values().sum::<usize>() as u64, count, "every notification checked");
    for subject in SUBJECTS {
        assert!(report.subjects.get(subject).is_some_and(|&n| n > 0), "no {subject} in {:?}", report.subjects);
    }
    let unused: Vec<_> = (0..ALLOWED.len())
        .filter(|k| !report.allowances_used.contains(k))
        .map(|k| format!("{} {} ({})", ALLOWED[k].schema, ALLOWED[k].path, ALLOWED[k].why))
        .collect();
    assert!(unused.is_empty(), "allow-list entries the simulator no longer needs (remove them): {unused:?}");
}

/// The walk itself: a value of the declared type passes, `null` for a string and an
/// undeclared member fail, and an allowed difference passes only with the example's type.
#[test]
fn the_check_catches_what_it_should() {
    let page = |content: Value| {
        serde_json::json!({"count": 1, "offset": 0, "limit": 1, "total": 1, "notifications": [{
            "subject": "CLEARING", "subscriptionName": "s", "pushStatus": "DELIVERED",
            "createdTimestamp": "2024-05-30T01:06:20.874Z", "content": content}]})
    };
    let problems = |content: Value| {
        let mut report = Report::default();
        check_page(&mut report, &page(content), "p");
        report.problems
    };
    let fine = problems(serde_json::json!({"tokenPan": "****1234", "cardHolderAmount": {"amount": 41.2}}));
    assert!(fine.is_empty(), "{fine:?}");
    assert_eq!(problems(serde_json::json!({"tokenPan": null})).len(), 1);
    assert_eq!(problems(serde_json::json!({"invented": 1})).len(), 1);
    assert_eq!(problems(serde_json::json!({"functionCode": 200.5})).len(), 1);
    let allowed = problems(serde_json::json!({"destinationInstitutionIdCode": "64456"}));
    assert!(allowed.is_empty(), "{allowed:?}");
    assert_eq!(problems(serde_json::json!({"destinationInstitutionIdCode": true})).len(), 1);
    assert_eq!(problems(serde_json::json!({"acceptor": {"amount": {"value": 14.1, "extra": "x"}}})).len(), 1);
    let mut report = Report::default();
    check_page(&mut report, &serde_json::json!({"count": 0, "offset": 0, "limit": 1, "notifications": []}), "p");
    assert_eq!(report.problems, ["p total: missing"]);
}

/// Where the OpenAPI file is: `CEN_OPENAPI`, else the development machine's copy.
fn openapi_file() -> PathBuf {
    match std::env::var_os("CEN_OPENAPI") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/cen-openapi.yml"),
    }
}

/// The file as text. It holds mis-encoded punctuation in descriptions (C0 control
/// characters and Latin-1 bytes), which a YAML parser rightly refuses; none of it is in a
/// name, type or example this test reads.
fn openapi_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() && !matches!(c, '\t' | '\n' | '\r') { ' ' } else { c })
        .collect()
}

fn declared_ty(schema: &Yaml) -> Option<Ty> {
    match schema["type"].as_str()? {
        "string" => Some(Str),
        "integer" => Some(Int),
        "number" => Some(Num),
        "boolean" => Some(Bool),
        "object" => Some(Obj),
        "array" => Some(Arr),
        _ => None,
    }
}

/// Every property path under `schema` with its declared type (`None`: no type the tables
/// know, which the comparison reports).
fn flatten(schema: &Yaml, path: &str, out: &mut BTreeMap<String, Option<Ty>>) {
    if let Some(properties) = schema["properties"].as_hash() {
        for (k, sub) in properties {
            let k = k.as_str().expect("property names are strings");
            let child = if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") };
            out.insert(child.clone(), declared_ty(sub));
            flatten(sub, &child, out);
        }
    }
    if declared_ty(schema) == Some(Arr) {
        let child = format!("{path}[]");
        out.insert(child.clone(), declared_ty(&schema["items"]));
        flatten(&schema["items"], &child, out);
    }
}

/// Keywords under `schema` that the tables cannot express (they know types only), as
/// `path: keyword`.
fn unexpressed(schema: &Yaml, path: &str, out: &mut Vec<String>) {
    for keyword in ["required", "nullable", "enum", "additionalProperties", "oneOf", "anyOf", "allOf", "$ref"] {
        if !schema[keyword].is_badvalue() {
            out.push(format!("{path}: {keyword}"));
        }
    }
    if let Some(properties) = schema["properties"].as_hash() {
        for (k, sub) in properties {
            unexpressed(sub, &format!("{path}.{}", k.as_str().unwrap_or("?")), out);
        }
    }
    if !schema["items"].is_badvalue() {
        unexpressed(&schema["items"], &format!("{path}[]"), out);
    }
}

fn example_ty(v: &Yaml) -> Option<Ty> {
    match v {
        Yaml::String(_) => Some(Str),
        Yaml::Integer(_) => Some(Int),
        Yaml::Real(_) => Some(Num),
        Yaml::Boolean(_) => Some(Bool),
        Yaml::Hash(_) => Some(Obj),
        Yaml::Array(_) => Some(Arr),
        Yaml::Null => Some(Null),
        _ => None,
    }
}

/// The places where example value `v` at `path` disagrees with `schema` (`BadValue`: the
/// path is not declared), as (path, type sent). Array elements sent for a declared object
/// are walked as that object, as [`check_value`] does.
fn disagreements(schema: &Yaml, v: &Yaml, path: &str, out: &mut BTreeSet<(String, Ty)>) {
    let (declared, sent) = (declared_ty(schema), example_ty(v).expect("a plain YAML value"));
    if !declared.is_some_and(|d| sent.fits(d)) {
        out.insert((path.to_owned(), sent));
    }
    match v {
        Yaml::Hash(members) => {
            for (k, member) in members {
                let k = k.as_str().expect("member names are strings");
                let child = if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") };
                disagreements(&schema["properties"][k], member, &child, out);
            }
        }
        Yaml::Array(items) if declared == Some(Obj) => {
            for item in items {
                disagreements(schema, item, path, out);
            }
        }
        Yaml::Array(items) => {
            for item in items {
                disagreements(&schema["items"], item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// Fails with the paths where `ours` and `theirs` differ.
fn assert_same(what: &str, ours: &BTreeMap<String, Option<Ty>>, theirs: &BTreeMap<String, Option<Ty>>) {
    let paths: BTreeSet<_> = ours.keys().chain(theirs.keys()).collect();
    let differ: Vec<_> = paths
        .into_iter()
        .filter(|p| ours.get(*p) != theirs.get(*p))
        .map(|p| format!("{p}: ours {:?}, the file {:?}", ours.get(p), theirs.get(p)))
        .collect();
    assert!(differ.is_empty(), "{what}:\n{}", differ.join("\n"));
}

/// The example of `GET /notifications` the file gives for each content schema.
const EXAMPLES: [(&str, &str); 6] = [
    ("ICCPAuthorizationNotificationContent", "GetNotificationICCPAuthorizationResponse"),
    ("ICCPClearingNotificationContent", "GetNotificationICCPClearingResponse"),
    ("BPCAuthorizationNotificationContent", "GetNotificationBPCAuthorizationResponse"),
    ("BPSPaymentUpdateNotificationContent", "GetNotificationBPSPaymentUpdateResponse"),
    ("ICMPLifecycleNotificationContent", "GetNotificationICMPLifecycleResponse"),
    ("ICMPProvisioningNotificationContent", "GetNotificationICMPProvisioningResponse"),
];

/// The drift check: the tables above say what the OpenAPI file declares, and [`ALLOWED`] is
/// exactly where its examples disagree with its types. Runs where the file is (see
/// [`openapi_file`]); elsewhere it writes a note that it compared nothing.
#[test]
fn tables_match_the_openapi_file() {
    let path = openapi_file();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            // Past the harness's output capture, so that a plain `cargo test` shows it.
            let _ = writeln!(
                std::io::stderr(),
                "note: tables_match_the_openapi_file compared nothing: cannot read the OpenAPI file {} ({e}); \
                 set CEN_OPENAPI=path/to/cen-openapi.yml to check the tables against it",
                path.display()
            );
            return;
        }
    };
    let docs = YamlLoader::load_from_str(&openapi_text(&bytes)).expect("the OpenAPI file parses as YAML");
    let components = &docs[0]["components"];
    let schemas = &components["schemas"];

    let top_level = |name: &str| {
        let mut all = BTreeMap::new();
        flatten(&schemas[name], "", &mut all);
        all.into_iter().filter(|(p, _)| !p.contains(['.', '['])).collect::<BTreeMap<_, _>>()
    };
    let ours = |table: Schema| table.iter().map(|(p, t)| (p.to_string(), Some(*t))).collect::<BTreeMap<_, _>>();
    assert_same("PAGE against NotificationsWrapper", &ours(PAGE), &top_level("NotificationsWrapper"));
    assert_same("NOTIFICATION against notification", &ours(NOTIFICATION), &top_level("notification"));

    for subject in SUBJECTS.into_iter().filter(|s| *s != "BPC_CLEARING") {
        let (name, tables) = schema_of(subject);
        let mut theirs = BTreeMap::new();
        flatten(&schemas[name], "", &mut theirs);
        assert!(!theirs.is_empty(), "no schema {name} in the file");
        let ours: BTreeMap<_, _> =
            tables.iter().flat_map(|t| t.iter()).map(|(p, t)| (p.to_string(), Some(*t))).collect();
        let count: usize = tables.iter().map(|t| t.len()).sum();
        assert_eq!(count, ours.len(), "{name}: a path is listed twice");
        assert_same(&format!("{subject}: the table against {name}"), &ours, &theirs);
    }

    // What the tables leave out is not declared: no property is required or nullable, no
    // value enumerated, and `content` is one of the six content schemas.
    let mut left_out = Vec::new();
    for (name, _) in EXAMPLES {
        unexpressed(&schemas[name], name, &mut left_out);
    }
    assert!(left_out.is_empty(), "the file now declares what the tables cannot say: {left_out:?}");
    let content: BTreeSet<_> = schemas["notification"]["properties"]["content"]["oneOf"]
        .as_vec()
        .expect("notification.content is a oneOf")
        .iter()
        .map(|r| r["$ref"].as_str().unwrap_or("?").trim_start_matches("#/components/schemas/"))
        .collect();
    assert_eq!(content, EXAMPLES.iter().map(|(name, _)| *name).collect(), "the schemas notification.content may be");

    let mut bpc = BTreeMap::new();
    flatten(&schemas["BPCAuthorizationNotificationContent"], "", &mut bpc);
    for (p, t) in BPC_CLEARING_EXTRA {
        assert_eq!(bpc.get(*p), Some(&Some(*t)), "BPC_CLEARING_EXTRA {p} against the BPC authorization schema");
    }

    let mut theirs = BTreeSet::new();
    for (name, example) in EXAMPLES {
        let notifications = &components["examples"][example]["value"]["notifications"];
        let notifications = notifications.as_vec().unwrap_or_else(|| panic!("example {example} has notifications"));
        for notification in notifications {
            let mut found = BTreeSet::new();
            disagreements(&schemas[name], &notification["content"], "", &mut found);
            theirs.extend(found.into_iter().map(|(p, t)| (name.to_owned(), p, t)));
        }
    }
    let ours: BTreeSet<_> = ALLOWED.iter().map(|a| (a.schema.to_owned(), a.path.to_owned(), a.sent)).collect();
    assert_eq!(ours, theirs, "ALLOWED against where the file's examples disagree with its types");
}
