//! The Mastercard Commercial Event Notifications API: what goes over the wire and how.
//!
//! - [`oauth`] signs requests the way Mastercard's gateway expects (OAuth 1.0a, RSA-SHA256,
//!   body hash), and [`keys`] loads the signing key from PKCS#12 or PEM;
//! - [`client`] calls `GET /notifications` and turns every answer into a page or a typed error;
//! - [`notification`] is the envelope every notification arrives in (push or pull), and
//!   [`id`] the stable id that makes a push copy and a pull copy one notification (its
//!   canonical JSON written by [`crate::json::canonical`]); on the hot path both are
//!   computed from `crate::json::tape`, a one-pass tokenizer that defers to them whenever
//!   it is not certain;
//! - [`lenient`] reads numbers that arrive as strings (the published examples disagree with
//!   the published types); a notification's `content` itself is never parsed, only carried;
//! - [`subscriptions`] calls the subscription and field mapping endpoints (SPEC 11).

pub mod client;
pub mod id;
pub mod keys;
pub mod lenient;
pub mod notification;
pub mod oauth;
pub mod subscriptions;

/// The seven subjects (SPEC 10), in the order the simulator's subject masks use.
pub const SUBJECTS: [&str; 7] = [
    "PAYMENT_AUTHORIZATION",
    "CLEARING",
    "BPC_PAYMENT_AUTHORIZATION",
    "BPC_CLEARING",
    "PAYMENT_UPDATE",
    "TOKEN_LIFECYCLE_EVENT",
    "TOKEN_PROVISIONING_EVENT",
];

/// How long Mastercard keeps a notification pollable (SPEC 10: "subject to change").
pub const RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);
