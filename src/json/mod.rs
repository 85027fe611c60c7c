//! JSON as cen-poller reads and writes it by hand, in one place: one string escaper
//! ([`escape`]), one RFC 8785 canonical writer ([`canonical`]) and one fast tokenizer
//! (`tape`) that defers to serde_json whenever it is not certain. Everything else parses
//! and writes JSON with serde_json.
//!
//! **Depth.** Every JSON document received — a push body, a `GET /notifications` page, a
//! VGS webhook — may nest at most [`MAX_DEPTH`] levels, serde_json's own limit: the fast
//! tokenizer refuses deeper nesting (so the general path runs), and serde_json then
//! refuses the document with a syntax error. A notification inside a push array may
//! therefore nest 126 levels, one inside a page 125.
//!
//! **Errors** about a received body go through [`error_message`], which never quotes a
//! value from the body (SPEC G6).

pub mod canonical;
pub mod escape;
pub(crate) mod tape;

/// The deepest nesting of a received JSON document, counting the outermost array or object
/// as level 1: serde_json refuses a 128th level (its `remaining_depth` starts at 128 and
/// fails on reaching 0), and the fast tokenizer is never asked for more.
pub const MAX_DEPTH: usize = 127;

/// serde_json's message for a syntax error, which names a line and column but never the
/// text; for a type error, which may quote a value from the body, a fixed message. Every
/// error about a received body goes through this: it is logged and returned to the sender,
/// and the body may carry card numbers (SPEC G6).
pub fn error_message(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => e.to_string(),
        Category::Data => "not a JSON value of the expected shape".into(),
    }
}
