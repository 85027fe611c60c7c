//! A one-pass JSON tokenizer for the notification hot path, and the canonical form (RFC 8785
//! without nulls, as [`super::canonical`] writes it) computed from its tokens.
//!
//! Why it exists: reading a `GET /notifications` page was the poller's largest CPU cost.
//! The general path parses the page with serde_json into raw items, then parses each item
//! again into a [`super::canonical::Node`] tree (a `Vec` per object and array: most of the time
//! went to malloc and free) and scans its text a third time to remove whitespace. Here one
//! pass over the bytes fills a flat, reusable array of tokens — each container knows where
//! its subtree ends, each value knows its byte span — and records whether any insignificant
//! whitespace occurred, so an item sent compact (as the API sends them) is stored by copying
//! its span.
//!
//! Correctness is by deferral, not by re-implementing serde_json: [`Tape::parse`] answers
//! `None` for anything it is not certain serde_json accepts with exactly the meaning given
//! here, and the caller then runs the general path, which also produces serde_json's error
//! messages. The invariant every caller relies on:
//!
//! **If [`Tape::parse`] accepts a text, `serde_json::from_str` accepts it too (as a
//! [`super::canonical::Node`] and, inside a page, as a `RawValue`), with the same values.**
//!
//! Hence what is deferred: nesting deeper than asked (serde_json stops at 128 levels),
//! control bytes inside strings, `\u` escapes of lone surrogates, numbers beyond the
//! doubles (`1e400`), and any syntax error (truncation, trailing bytes, `01`, `1.`, `+1` …).
//! Strings with valid escapes are decoded by serde_json itself (rare; exact by
//! construction). Numbers that are not short plain integers are converted by
//! [`number_value`], which gives serde_json's double.
//!
//! The canonical writer ([`Tape::write_canonical`]) defers too (answers `None`) on a member
//! name repeated within an object: serde_json keeps the last one, and so does the general
//! path; rare, and not worth a second rule here.

use std::cmp::Ordering;

use super::canonical::{Node, cmp_utf16};
use super::escape::push_json_str;

/// The deepest nesting [`Tape::parse`] is asked to take for a whole document.
pub(crate) const MAX_DEPTH: usize = super::MAX_DEPTH;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    True,
    False,
    /// `0` or `-?[1-9][0-9]{0,14}`: exact as a double, and RFC 8785 writes it as it is.
    Int,
    /// Any other number; its span is valid JSON number syntax.
    Num,
    /// A string without escapes: its span (quotes excluded) is its value.
    Str,
    /// A string with escapes: its span is its decoded value in [`Tape::decoded`].
    EscStr,
    Array,
    Object,
}

/// One value (or member name) of the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    /// Byte span: of the text for everything but [`Kind::EscStr`] (whose span is in
    /// [`Tape::decoded`]); strings without their quotes; containers from the bracket to the
    /// closing bracket included.
    start: u32,
    end: u32,
    /// The index of the token after this value's subtree (`index + 1` for a scalar).
    next: u32,
}

/// An object member while its object is written: the first eight bytes of its name as a
/// big-endian number (zero-padded; see [`Tape::cmp_names`]), its value's token index (the
/// name's is the one before) and its position in the object. Small, because sorting moves
/// it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    prefix: u64,
    value: u32,
    position: u32,
}

impl Member {
    fn name(&self) -> usize {
        (self.value as usize).saturating_sub(1)
    }
}

/// Scratch space for [`Tape::write_canonical`], kept by the caller to be reused: the members
/// being sorted, and the orders of recently seen objects.
///
/// Notifications of one subject have objects with the same members in the same order, so
/// the sorted order of an object's members is remembered by a hash of its names and tried
/// first on the next object with that hash. Trying it is checked, not trusted: the result
/// is used only when every name is smaller than the next, which is the sorted order of
/// distinct names whatever the hash said; otherwise the members are sorted as usual.
#[derive(Debug, Default)]
pub(crate) struct Sorter {
    /// The members of the objects being written: each object's above its enclosing one's.
    members: Vec<Member>,
    /// (hash of the names in document order, positions in sorted order), by hash.
    orders: Vec<(u64, Vec<u32>)>,
    /// Members in a remembered order, before they are checked.
    reordered: Vec<Member>,
    /// Whether to remember orders: from the second notification on (a single one, as a push
    /// of one notification, would only pay for it).
    remember: bool,
}

/// Objects with fewer members are sorted right away.
const REMEMBER_FROM: usize = 6;
/// How many orders are remembered (one per slot, by hash).
const ORDER_SLOTS: usize = 64;

/// The first eight bytes of `name`, zero-padded, as a big-endian number: comparing two of
/// them compares the names' first eight bytes.
#[inline]
fn prefix(name: &[u8]) -> u64 {
    if let Some(Ok(first)) = name.get(..8).map(<[u8; 8]>::try_from) {
        return u64::from_be_bytes(first);
    }
    let mut bytes = [0u8; 8];
    for (to, from) in bytes.iter_mut().zip(name) {
        *to = *from;
    }
    u64::from_be_bytes(bytes)
}

/// Reusable token storage: parse one value after another into the same tape, and nothing is
/// allocated once the buffers have grown to the largest value.
#[derive(Debug, Default)]
pub(crate) struct Tape {
    tokens: Vec<Token>,
    /// Decoded strings that had escapes, one after another.
    decoded: String,
    /// The open containers while parsing: token index, and whether it is an object.
    stack: Vec<(u32, bool)>,
    /// Whether insignificant whitespace occurred inside the last value parsed.
    whitespace: bool,
}

/// Serde_json's whitespace, the only whitespace JSON has.
#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

/// The first index at or after `i` that is not whitespace (`b.len()` when none is).
#[inline]
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).copied().is_some_and(is_ws) {
        i += 1;
    }
    i
}

impl Tape {
    /// Tokenizes the JSON value that starts at `from` (after any whitespace), nesting at
    /// most `max_depth` containers deep. Returns the index just past the value — nothing
    /// after it is looked at — or `None` when the value is not certainly valid JSON with the
    /// meaning this module gives it (see the module documentation).
    ///
    /// serde_json refuses a 128th level of nesting, so `max_depth` must be at most 127.
    pub(crate) fn parse(&mut self, text: &str, from: usize, max_depth: usize) -> Option<usize> {
        self.tokens.clear();
        self.decoded.clear();
        self.stack.clear();
        self.whitespace = false;
        let b = text.as_bytes();
        // Offsets are stored as u32; a larger text takes the general path.
        u32::try_from(b.len()).ok()?;
        let mut i = skip_ws(b, from);
        loop {
            // A value starts at `i`.
            i = self.value(text, i, max_depth)?;
            // Close whatever the value completed; stop at a comma (another value follows)
            // or when the outermost value is complete.
            loop {
                let Some(&(_, is_object)) = self.stack.last() else {
                    return Some(i);
                };
                i = self.ws(b, i);
                match *b.get(i)? {
                    b',' => {
                        i = self.ws(b, i + 1);
                        if is_object {
                            i = self.member_name(text, i)?;
                        }
                        break;
                    }
                    b']' if !is_object => i = self.close(i)?,
                    b'}' if is_object => i = self.close(i)?,
                    _ => return None,
                }
            }
        }
    }

    /// Skips whitespace, remembering that there was some.
    #[inline]
    fn ws(&mut self, b: &[u8], i: usize) -> usize {
        let j = skip_ws(b, i);
        self.whitespace |= j != i;
        j
    }

    /// Pushes a scalar token.
    #[inline]
    fn push(&mut self, kind: Kind, start: usize, end: usize) {
        let next = self.tokens.len() as u32 + 1;
        // `parse` checked that the text's length fits in u32.
        self.tokens.push(Token { kind, start: start as u32, end: end as u32, next });
    }

    /// Parses one value at `i` (not whitespace). A container is opened and left open;
    /// its first member (name and `:`) or element is consumed up to the next value.
    fn value(&mut self, text: &str, mut i: usize, max_depth: usize) -> Option<usize> {
        let b = text.as_bytes();
        // Containers opened in a row (`[[{"a":[`) are handled here without returning.
        loop {
            let (kind, close) = match *b.get(i)? {
                b'{' => (Kind::Object, b'}'),
                b'[' => (Kind::Array, b']'),
                _ => break,
            };
            if self.stack.len() >= max_depth {
                return None;
            }
            self.stack.push((self.tokens.len() as u32, kind == Kind::Object));
            self.push(kind, i, i);
            i = self.ws(b, i + 1);
            if b.get(i) == Some(&close) {
                return self.close(i);
            }
            if kind == Kind::Object {
                i = self.member_name(text, i)?;
            }
        }
        match *b.get(i)? {
            b'"' => self.string(text, i),
            b'n' => self.literal(b, i, b"null", Kind::Null),
            b't' => self.literal(b, i, b"true", Kind::True),
            b'f' => self.literal(b, i, b"false", Kind::False),
            b'-' | b'0'..=b'9' => self.number(b, i),
            _ => None,
        }
    }

    /// Closes the innermost container at its closing bracket `i`.
    fn close(&mut self, i: usize) -> Option<usize> {
        let open = self.stack.pop()?.0 as usize;
        let next = self.tokens.len() as u32;
        let token = self.tokens.get_mut(open)?;
        token.end = i as u32 + 1;
        token.next = next;
        Some(i + 1)
    }

    /// A member name at `i`, the `:` and the whitespace after it.
    fn member_name(&mut self, text: &str, i: usize) -> Option<usize> {
        let b = text.as_bytes();
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let end = self.string(text, i)?;
        let i = self.ws(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        Some(self.ws(b, i + 1))
    }

    fn literal(&mut self, b: &[u8], i: usize, word: &[u8], kind: Kind) -> Option<usize> {
        let end = i + word.len();
        if b.get(i..end)? != word {
            return None;
        }
        self.push(kind, i, end);
        Some(end)
    }

    /// A number at `i` (a `-` or a digit), by the JSON grammar, which is serde_json's:
    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. What may follow it is
    /// checked by the caller (`01` fails there: a value may not follow a value).
    fn number(&mut self, b: &[u8], start: usize) -> Option<usize> {
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let negative = b.get(start) == Some(&b'-');
        let int_start = start + usize::from(negative);
        let mut i = match *b.get(int_start)? {
            b'0' => int_start + 1,
            b'1'..=b'9' => digits(int_start + 1),
            _ => return None,
        };
        let int_end = i;
        let mut plain = true;
        if b.get(i) == Some(&b'.') {
            plain = false;
            let frac = i + 1;
            i = digits(frac);
            if i == frac {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            plain = false;
            let mut exp = i + 1;
            if matches!(b.get(exp), Some(b'+' | b'-')) {
                exp += 1;
            }
            i = digits(exp);
            if i == exp {
                return None;
            }
        }
        // `-0` is the double -0.0, which RFC 8785 writes as `0`: not its own spelling.
        let int = plain && int_end - int_start <= 15 && !(negative && b.get(int_start) == Some(&b'0'));
        if !int {
            // serde_json refuses numbers beyond the doubles (`1e400`): check now, so that
            // whatever the tape takes serde_json takes. A short decimal is always in range.
            let spelling = std::str::from_utf8(b.get(start..i)?).ok()?;
            if short_decimal(spelling).is_none() {
                number_value(spelling)?;
            }
        }
        self.push(if int { Kind::Int } else { Kind::Num }, start, i);
        Some(i)
    }

    /// A string whose opening quote is at `quote`.
    #[inline]
    fn string(&mut self, text: &str, quote: usize) -> Option<usize> {
        let b = text.as_bytes();
        let start = quote + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = find_string_special(b, i)?;
            match *b.get(i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i = escape_end(b, i)?;
                }
                // A control byte: serde_json refuses it.
                _ => return None,
            }
        }
        if escaped {
            self.escaped_string(text.get(quote..i + 1)?)?;
        } else {
            self.push(Kind::Str, start, i);
        }
        Some(i + 1)
    }

    /// Pushes the string `literal` (quotes included), which has escapes. Rare: serde_json
    /// decodes it (its escapes were checked to be ones it takes).
    #[cold]
    fn escaped_string(&mut self, literal: &str) -> Option<()> {
        let value: String = serde_json::from_str(literal).ok()?;
        let at = self.decoded.len();
        self.decoded.push_str(&value);
        self.push(Kind::EscStr, at, self.decoded.len());
        Some(())
    }

    /// The tokens of the last value parsed; the value itself is token 0.
    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether insignificant whitespace occurred inside the last value parsed (before it,
    /// from `from`, does not count).
    pub(crate) fn had_whitespace(&self) -> bool {
        self.whitespace
    }

    /// The value of a string token (`None` for any other kind).
    pub(crate) fn str<'t>(&'t self, text: &'t str, t: Token) -> Option<&'t str> {
        let span = t.start as usize..t.end as usize;
        match t.kind {
            Kind::Str => text.get(span),
            Kind::EscStr => self.decoded.get(span),
            _ => None,
        }
    }

    /// The text of a token: a number's spelling, a container's whole text.
    pub(crate) fn span<'t>(&self, text: &'t str, t: Token) -> Option<&'t str> {
        text.get(t.start as usize..t.end as usize)
    }

    /// The members of the object token `at` as (name, value) token indices, in document
    /// order; empty for anything else.
    pub(crate) fn members(&self, at: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (mut i, end) = match self.tokens.get(at) {
            Some(t) if t.kind == Kind::Object => (at + 1, t.next as usize),
            _ => (0, 0),
        };
        std::iter::from_fn(move || {
            if i >= end {
                return None;
            }
            let name = i;
            let value = name + 1;
            i = self.tokens.get(value)?.next as usize;
            Some((name, value))
        })
    }

    /// Appends the RFC 8785 form of the value `at` to `out`, leaving out — recursively —
    /// every member whose value is null and, in the object `at` itself, the members named
    /// in `drop_top`: what [`super::canonical::write_canonical_without_nulls`] writes for the same
    /// text. `None` (with `out` partly written) when this cannot be done with certainty: a
    /// member name repeated within an object, or a number serde_json refuses.
    ///
    /// `sorter` is scratch space, kept by the caller to be reused.
    pub(crate) fn write_canonical(
        &self,
        text: &str,
        at: usize,
        drop_top: &[&str],
        out: &mut String,
        sorter: &mut Sorter,
    ) -> Option<()> {
        // A write that stopped half-way may have left members behind.
        sorter.members.clear();
        let written = self.write_value(text, at, drop_top, out, sorter);
        sorter.remember = true;
        written
    }

    fn write_value(
        &self,
        text: &str,
        at: usize,
        drop_top: &[&str],
        out: &mut String,
        sorter: &mut Sorter,
    ) -> Option<()> {
        let t = *self.tokens.get(at)?;
        match t.kind {
            Kind::Null => out.push_str("null"),
            Kind::True => out.push_str("true"),
            Kind::False => out.push_str("false"),
            // Up to 15 digits without a leading zero: an exact double below 1e21, which
            // ECMAScript writes as its integer digits, i.e. as it was sent.
            Kind::Int => out.push_str(self.span(text, t)?),
            Kind::Num => {
                let x = number_value(self.span(text, t)?)?;
                out.push_str(ryu_js::Buffer::new().format_finite(x));
            }
            Kind::Array => {
                out.push('[');
                let mut i = at + 1;
                while i < t.next as usize {
                    if i > at + 1 {
                        out.push(',');
                    }
                    self.write_value(text, i, &[], out, sorter)?;
                    i = self.tokens.get(i)?.next as usize;
                }
                out.push(']');
            }
            Kind::Object => {
                // This object's members go above the enclosing objects' in the scratch; the
                // nested objects written below push above these and truncate back.
                let base = sorter.members.len();
                let mut hash = 0u64;
                for (position, (name, value)) in self.members(at).enumerate() {
                    let name = self.str(text, *self.tokens.get(name)?)?;
                    let prefix = prefix(name.as_bytes());
                    hash = (hash.rotate_left(5) ^ prefix ^ name.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    sorter.members.push(Member { prefix, value: value as u32, position: position as u32 });
                }
                // A repeated name (null-valued or not) takes the general path, which keeps
                // the last.
                self.sort(text, sorter, base, hash)?;
                out.push('{');
                let mut first = true;
                for i in base..sorter.members.len() {
                    let m = *sorter.members.get(i)?;
                    let name = *self.tokens.get(m.name())?;
                    if self.tokens.get(m.value as usize)?.kind == Kind::Null
                        || (!drop_top.is_empty() && drop_top.contains(&self.str(text, name)?))
                    {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    match self.member_text(text, name, m.value) {
                        Some(member) => out.push_str(member),
                        None => {
                            self.write_str(text, name, out)?;
                            out.push(':');
                            self.write_value(text, m.value as usize, &[], out, sorter)?;
                        }
                    }
                }
                sorter.members.truncate(base);
                out.push('}');
            }
            Kind::Str | Kind::EscStr => self.write_str(text, t, out)?,
        }
        Some(())
    }

    /// The text of a member (`"name":value`) when it is already its canonical form, as for
    /// most members of compact text: a name without escapes, `:` right after it, and a
    /// value written as it came (a string without escapes, a short integer, a boolean).
    #[inline]
    fn member_text<'t>(&self, text: &'t str, name: Token, value: u32) -> Option<&'t str> {
        let value = *self.tokens.get(value as usize)?;
        // Where the value's text would start if only `:` separated it from the name.
        let next = name.end as usize + 2;
        let end = match value.kind {
            Kind::Str if value.start as usize == next + 1 => value.end as usize + 1,
            Kind::Int | Kind::True | Kind::False if value.start as usize == next => value.end as usize,
            _ => return None,
        };
        if name.kind != Kind::Str {
            return None;
        }
        text.get((name.start as usize).checked_sub(1)?..end)
    }

    /// Sorts the members from `base` on (one object's, whose names hash to `hash`) by name;
    /// `None` when a name is repeated.
    fn sort(&self, text: &str, sorter: &mut Sorter, base: usize, hash: u64) -> Option<()> {
        let Sorter { members, orders, reordered, remember } = sorter;
        let n = members.len().checked_sub(base)?;
        // Strictly increasing names: sorted, and none repeated.
        let increasing = |m: &[Member]| m.windows(2).all(|w| self.cmp_names(text, &w[0], &w[1]).is_lt());
        let slot = (hash % ORDER_SLOTS as u64) as usize;
        if n >= REMEMBER_FROM
            && let Some((seen, order)) = orders.get(slot)
            && *seen == hash
            && order.len() == n
        {
            reordered.clear();
            for &position in order {
                reordered.push(*members.get(base + position as usize)?);
            }
            if increasing(reordered) {
                members.truncate(base);
                members.extend_from_slice(reordered);
                return Some(());
            }
        }
        let sorted = members.get_mut(base..)?;
        sorted.sort_unstable_by(|a, b| self.cmp_names(text, a, b));
        if !increasing(sorted) {
            return None;
        }
        if n >= REMEMBER_FROM && *remember {
            if orders.len() < ORDER_SLOTS {
                orders.resize_with(ORDER_SLOTS, Default::default);
            }
            let (seen, order) = orders.get_mut(slot)?;
            *seen = hash;
            order.clear();
            order.extend(sorted.iter().map(|m| m.position));
        }
        Some(())
    }

    /// The RFC 8785 order of two member names: by their first eight bytes when those
    /// differ and decide ([`prefix`]), otherwise by [`cmp_utf16`].
    #[inline]
    fn cmp_names(&self, text: &str, a: &Member, b: &Member) -> Ordering {
        let diff = a.prefix ^ b.prefix;
        if diff != 0 {
            // The first differing byte, from the most significant end. Byte order is UTF-16
            // order unless both bytes are 0xEE or above (see `cmp_utf16`); a byte of
            // padding (0) is where a shorter name ended, which sorts it first either way.
            let shift = 56 - diff.leading_zeros() / 8 * 8;
            let (x, y) = ((a.prefix >> shift) as u8, (b.prefix >> shift) as u8);
            if x < 0xEE || y < 0xEE {
                return a.prefix.cmp(&b.prefix);
            }
        }
        let name = |m: &Member| self.tokens.get(m.name()).and_then(|&t| self.str(text, t)).unwrap_or_default();
        cmp_utf16(name(a), name(b))
    }

    /// Writes a string token as RFC 8785 does.
    fn write_str(&self, text: &str, t: Token, out: &mut String) -> Option<()> {
        if t.kind == Kind::Str {
            // No escapes and (checked while parsing) no control bytes, so nothing in it
            // needs escaping: it is written as it came, quotes included.
            out.push_str(text.get((t.start as usize).checked_sub(1)?..t.end as usize + 1)?);
        } else {
            push_json_str(out, self.str(text, t)?);
        }
        Some(())
    }
}

/// The double serde_json gives for the number `spelling` (valid JSON number syntax), or
/// `None` when serde_json refuses it (out of range).
///
/// A decimal of at most 15 digits without exponent (`123.40`, what amounts look like) is
/// computed directly: its digits as an integer, exact as a double below 2^53, divided by
/// an exact power of ten (at most 10^14 here, exact up to 10^22). One IEEE division rounds
/// correctly, and that is what serde_json gives for such a number with or without its
/// `float_roundtrip` feature: without it, `f64_from_parts` performs this very division;
/// with it, its parser is correctly rounding. Anything else is handed to serde_json.
pub(crate) fn number_value(spelling: &str) -> Option<f64> {
    if let Some(x) = short_decimal(spelling) {
        return Some(x);
    }
    match Node::parse(spelling) {
        Ok(Node::Number(x)) if x.is_finite() => Some(x),
        _ => None,
    }
}

/// See [`number_value`]: `-?[0-9]+\.[0-9]+` with at most 15 digits in all.
fn short_decimal(s: &str) -> Option<f64> {
    /// Powers of ten that are exact doubles.
    const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.')?;
    if int.is_empty() || frac.is_empty() || int.len() + frac.len() > 15 {
        return None;
    }
    let mut significand: u64 = 0;
    for c in int.bytes().chain(frac.bytes()) {
        if !c.is_ascii_digit() {
            return None;
        }
        significand = significand * 10 + u64::from(c - b'0');
    }
    let x = significand as f64 / POW10.get(frac.len())?;
    Some(if negative { -x } else { x })
}

/// The index of the first `"`, `\` or control byte (< 0x20) at or after `i`.
///
/// Eight bytes at a time: for each byte class a word has a high bit set in the lowest byte
/// that belongs to it (the classic "has zero byte" test; its false positives only ever lie
/// above a true one), so the lowest set bit of the union is the first special byte.
#[inline]
fn find_string_special(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(Ok(chunk)) = b.get(i..i + 8).map(<[u8; 8]>::try_from) {
        let x = u64::from_le_bytes(chunk);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let hits = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The index after the escape whose backslash is at `i`, when serde_json takes it as part
/// of a string: `\" \\ \/ \b \f \n \r \t`, `\uXXXX` outside the surrogates, or a leading
/// surrogate escape followed at once by a trailing one. Anything else is deferred.
fn escape_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 2),
        b'u' => {
            let unit = hex4(b, i + 2)?;
            match unit {
                0xD800..=0xDBFF => {
                    if b.get(i + 6..i + 8)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(b, i + 8)?;
                    (0xDC00..=0xDFFF).contains(&low).then_some(i + 12)
                }
                0xDC00..=0xDFFF => None,
                _ => Some(i + 6),
            }
        }
        _ => None,
    }
}

/// Four hex digits at `i`.
fn hex4(b: &[u8], i: usize) -> Option<u16> {
    let digits = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
    // `from_str_radix` takes a leading `+`, which JSON does not.
    if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    use super::*;
    use crate::cen::notification::{Notification, Scratch};
    use crate::json::canonical::write_canonical_without_nulls;

    /// Checks the fast path against the general path on `text` and returns whether the fast
    /// path took it:
    /// - the tape never accepts what serde_json refuses;
    /// - when the tape accepts, its canonical form (if it writes one) is `jcs`'s;
    /// - when the fast path gives a notification, it is the general path's, field for field.
    fn check(text: &str, scratch: &mut Scratch) -> bool {
        let mut tape = Tape::default();
        if let Some(end) = tape.parse(text, 0, MAX_DEPTH)
            && skip_ws(text.as_bytes(), end) == text.len()
        {
            let node =
                Node::parse(text).unwrap_or_else(|e| panic!("the tape took what serde_json refuses ({e}): {text:?}"));
            for drop in [&[][..], &["pushStatus"]] {
                let (mut ours, mut theirs, mut sorter) = (String::new(), String::new(), Sorter::default());
                if tape.write_canonical(text, 0, drop, &mut ours, &mut sorter).is_some() {
                    write_canonical_without_nulls(&node, drop, &mut theirs).unwrap();
                    assert_eq!(ours, theirs, "canonical form of {text:?}");
                }
            }
        }
        let general = Notification::from_json_general(text);
        match Notification::from_json_fast(text, scratch) {
            Some(fast) => {
                assert_eq!(Ok(&fast), general.as_ref(), "{text:?}");
                true
            }
            None => false,
        }
    }

    /// A notification whose content is `content` (JSON text).
    fn with_content(content: &str) -> String {
        format!(
            r#"{{"subject":"CLEARING","subscriptionName":"ops","pushStatus":"FAILED","createdTimestamp":"2026-11-22T10:00:00.640Z","content":{content}}}"#
        )
    }

    fn stream(seed: u64, count: u64) -> crate::simulate::generate::Stream {
        crate::simulate::generate::Stream {
            seed,
            start_ms: 1_795_000_000_000,
            rate: 3.0,
            count: Some(count),
            late_fraction: 0.0,
            late_by_ms: 0,
        }
    }

    #[test]
    fn fast_path_matches_the_general_path_on_the_jcs_cases() {
        let mut scratch = Scratch::default();
        for case in crate::json::canonical::tests::CASES {
            // Not notifications (no subject): checked for the tape and the canonical form.
            assert!(!check(case, &mut scratch));
            let text = with_content(case);
            check(&text, &mut scratch);
        }
        // The plain ones and the escaped ones are taken, not deferred.
        for case in [0, 1, 2, 3, 5, 9] {
            let text = with_content(crate::json::canonical::tests::CASES[case]);
            assert!(check(&text, &mut scratch), "case {case} deferred");
        }
    }

    #[test]
    fn fast_path_takes_and_matches_generated_notifications() {
        let stream = stream(11, 3000);
        let mut scratch = Scratch::default();
        for i in 0..3000 {
            let text = stream.item_json(i, Some(["DELIVERED", "FAILED", "PENDING"][i as usize % 3]));
            assert!(check(&text, &mut scratch), "item {i} deferred");
            assert_eq!(Notification::from_json_fast(&text, &mut scratch).unwrap().id, stream.item_id(i), "item {i}");
            if i % 50 == 0 {
                // Whitespace: the stored text is compacted exactly as the general path does.
                let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&text).unwrap()).unwrap();
                assert!(check(&pretty, &mut scratch), "pretty item {i} deferred");
                assert!(check(&format!(" \n{text}\t "), &mut scratch), "padded item {i} deferred");
            }
        }
    }

    #[test]
    fn odd_numbers_strings_and_repeats_are_deferred_or_identical() {
        let mut scratch = Scratch::default();
        let taken = [
            "0",
            "-1",
            "123456789012345",
            "-123456789012345",
            "1234567890123456",
            "9007199254740993",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "-0",
            "-0.0",
            "0.1",
            "123.40",
            "0.000000000000001",
            "99999999999999.9",
            "1e2",
            "1E-2",
            "-1.5e+3",
            "1e-400",
            "5e-324",
            "1.7976931348623157e308",
            "123456789012345678901234567890",
            r#""\u0041\/\b\f\n\r\t\"\\""#,
            r#""\ud83d\ude00 \u20ac \u0000 \u001f""#,
            r#"{"\u0061":1,"b":2}"#,
            "\"\u{7f}\u{2028}é😀\"",
        ];
        for value in taken {
            assert!(check(&with_content(value), &mut scratch), "{value} deferred");
            assert!(check(&with_content(&format!("[{value},{{\"k\":{value}}}]")), &mut scratch), "{value} deferred");
        }
        let deferred = [
            "1e400",
            "-1e400",
            "01",
            "-01",
            "1.",
            ".5",
            "+1",
            "-",
            "1e",
            "1e+",
            "0x10",
            "NaN",
            "Infinity",
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\ud800x""#,
            r#""\x""#,
            r#""\u00g0""#,
            r#""\u+041""#,
            "\"\u{1}\"",
            "\"a\tb\"",
            r#"{"a":1,"a":2}"#,
            r#"{"a":null,"a":2}"#,
            r#"{"a":1,"\u0061":null}"#,
            r#"[{"x":{"y":1,"y":1}}]"#,
            "nul",
            "tru",
            "[1,]",
            "{,}",
            r#"{"a"}"#,
        ];
        for value in deferred {
            assert!(!check(&with_content(value), &mut scratch), "{value} taken");
        }
        // Repeated members of the notification itself.
        let text = with_content("1").replace(r#""subject":"CLEARING""#, r#""subject":"A","subject":"CLEARING""#);
        assert!(!check(&text, &mut scratch));
        let text = with_content("1").replace(r#""pushStatus":"FAILED""#, r#""pushStatus":"A","pushStatus":null"#);
        assert!(!check(&text, &mut scratch));
        // Missing or bad members: the general path's errors.
        for text in [
            r#"{"subject":"","createdTimestamp":"2026-11-22T10:00:00Z","content":{}}"#,
            r#"{"subject":1,"createdTimestamp":"2026-11-22T10:00:00Z","content":{}}"#,
            r#"{"subject":"X","createdTimestamp":"2026-11-22","content":{}}"#,
            r#"{"subject":"X","createdTimestamp":"2026-11-22T10:00:00Z","content":null}"#,
            r#"{"subject":"X","createdTimestamp":"2026-11-22T10:00:00Z"}"#,
            r#"[{"subject":"X","createdTimestamp":"2026-11-22T10:00:00Z","content":{}}]"#,
            r#""x""#,
            "",
            " ",
        ] {
            assert!(!check(text, &mut scratch), "{text}");
        }
        // Optional members that are not strings are absent, as in the general path.
        let text = r#"{"subject":"X","createdTimestamp":"2026-11-22T10:00:00+01:00","content":0,"pushStatus":7,"subscriptionName":null}"#;
        assert!(check(text, &mut scratch));
    }

    /// JSON texts of any shape: scalars of every spelling the grammar allows (long and
    /// huge numbers, every escape, surrogate pairs and lone surrogates, raw control bytes)
    /// in arrays and objects up to eight levels deep, with repeated member names.
    fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            "[a-zA-Z0-9 é😀]{0,5}",
            Just("\\n".to_owned()),
            Just("\\\"".to_owned()),
            Just("\\\\".to_owned()),
            Just("\\/".to_owned()),
            Just("\\b".to_owned()),
            Just("\\f".to_owned()),
            "\\\\u[0-9a-fA-F]{4}",
            Just("\\uD83D\\uDE00".to_owned()),
            Just("\\uDE00".to_owned()),
            Just("\u{1}".to_owned()),
            Just("\u{1f}".to_owned()),
        ];
        let string = proptest::collection::vec(piece, 0..5).prop_map(|p| format!("\"{}\"", p.concat()));
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| x.to_string()),
            "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            string.clone(),
        ];
        leaf.prop_recursive(8, 64, 6, move |inner| {
            let key = prop_oneof![string.clone(), Just("\"a\"".to_owned()), Just("\"content\"".to_owned())];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((key, inner, "[ \n\t]{0,2}"), 0..6).prop_map(|m| {
                    let members: Vec<String> = m.iter().map(|(k, v, ws)| format!("{k}{ws}:{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    /// Applies one to three byte edits — delete, insert a byte that matters to JSON, flip a
    /// bit, truncate — and keeps the result only if it is still UTF-8.
    fn mutated(text: &str, edits: &[(usize, u8, u8)]) -> Option<String> {
        const NASTY: &[u8] = b"\"\\{}[],:0-+.eE \x00\x1f";
        let mut b = text.as_bytes().to_vec();
        for &(at, kind, pick) in edits {
            if b.is_empty() {
                break;
            }
            let at = at % b.len();
            match kind % 4 {
                0 => drop(b.remove(at)),
                1 => b.insert(at, NASTY[usize::from(pick) % NASTY.len()]),
                2 => b[at] ^= 1 << (pick % 7),
                _ => b.truncate(at),
            }
        }
        String::from_utf8(b).ok()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// The tape accepts only what serde_json accepts, with the same value (canonical
        /// form), and a notification read by the fast path is the general path's.
        #[test]
        fn generated_json_is_read_as_serde_json_reads_it(text in json_text()) {
            let mut scratch = Scratch::default();
            check(&text, &mut scratch);
            check(&with_content(&text), &mut scratch);
        }

        #[test]
        fn mutated_json_is_refused_deferred_or_read_as_serde_json_reads_it(
            text in json_text(),
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), 0u8..4, proptest::prelude::any::<u8>()), 1..4),
        ) {
            let mut scratch = Scratch::default();
            for text in [text.clone(), with_content(&text)] {
                if let Some(m) = mutated(&text, &edits) {
                    check(&m, &mut scratch);
                }
            }
        }

        /// Nesting around the limit, of arrays and objects mixed: taken only where serde_json
        /// takes it.
        #[test]
        fn deep_nesting_is_refused_where_serde_json_refuses_it(depth in 100usize..140, kinds in proptest::prelude::any::<u64>()) {
            let (mut open, mut close) = (String::new(), String::new());
            for level in 0..depth {
                if kinds.rotate_left(level as u32) & 1 == 0 {
                    open.push('[');
                    close.insert(0, ']');
                } else {
                    open.push_str("{\"k\":");
                    close.insert(0, '}');
                }
            }
            let text = format!("{open}1{close}");
            let mut tape = Tape::default();
            let taken = tape.parse(&text, 0, MAX_DEPTH).is_some();
            proptest::prop_assert_eq!(taken, serde_json::from_str::<Value>(&text).is_ok(), "depth {}", depth);
            proptest::prop_assert_eq!(taken, depth <= MAX_DEPTH);
        }
    }

    #[test]
    fn nesting_stops_where_serde_jsons_does() {
        let mut scratch = Scratch::default();
        for depth in [126, 127, 128, 129, 200] {
            let nested = "[".repeat(depth) + &"]".repeat(depth);
            let mut tape = Tape::default();
            let taken = tape.parse(&nested, 0, MAX_DEPTH).is_some();
            assert_eq!(taken, depth <= 127, "depth {depth}");
            assert_eq!(serde_json::from_str::<Value>(&nested).is_ok(), depth <= 127, "depth {depth}");
            // In a notification the object itself is one level.
            let objects = "{\"a\":".repeat(depth - 1) + "1" + &"}".repeat(depth - 1);
            assert_eq!(check(&with_content(&objects), &mut scratch), depth <= 127, "depth {depth}");
            check(&with_content(&nested), &mut scratch);
        }
    }

    #[test]
    fn mutated_notifications_are_deferred_or_identical() {
        let mut scratch = Scratch::default();
        let stream = stream(5, 3);
        let mut bases: Vec<String> = (0..3).map(|i| stream.item_json(i, Some("DELIVERED"))).collect();
        bases.push(with_content(r#"{"a":[1,-2.50,"x\"y",null,true,false,{}],"b":{"c":"é\u20ac"},"d":1e2}"#));
        // Every prefix.
        for base in &bases {
            for end in (0..base.len()).filter(|&e| base.is_char_boundary(e)) {
                assert!(!check(&base[..end], &mut scratch), "prefix {end} of {base}");
            }
        }
        // Every position of the small one and a sample of the others: one byte changed,
        // a byte inserted.
        let bytes: &[u8] = b"\"\\,:{}[]0-.eE +\x01\n\tn";
        for (n, base) in bases.iter().enumerate() {
            let step = if n == 3 { 1 } else { 7 };
            for at in (0..base.len()).step_by(step) {
                for &c in bytes {
                    let mut changed = base.clone().into_bytes();
                    changed[at] = c;
                    if let Ok(text) = String::from_utf8(changed) {
                        check(&text, &mut scratch);
                    }
                    let mut inserted = base.clone().into_bytes();
                    inserted.insert(at, c);
                    if let Ok(text) = String::from_utf8(inserted) {
                        check(&text, &mut scratch);
                    }
                }
            }
        }
    }

    #[test]
    fn random_garbage_never_panics_or_differs() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut scratch = Scratch::default();
        let alphabet = b"{}[]\":,0123456789-+.eEnultrfase \\/\t\n\xc3\xa9";
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let bytes: Vec<u8> = (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
            let text = String::from_utf8_lossy(&bytes);
            check(&text, &mut scratch);
            let _ = Tape::default().parse(&text, rng.random_range(0..=len), MAX_DEPTH);
        }
    }

    #[test]
    fn short_decimals_are_serde_jsons_doubles() {
        let mut rng = StdRng::seed_from_u64(9);
        for n in 0..300_000 {
            let digits = rng.random_range(2..=15);
            let int_len = rng.random_range(1..digits);
            let mut s = String::new();
            if n % 2 == 1 {
                s.push('-');
            }
            for i in 0..digits {
                if i == int_len {
                    s.push('.');
                }
                // No leading zero unless the integer part is just `0`.
                let d = if i == 0 && int_len > 1 { rng.random_range(1..10) } else { rng.random_range(0..10) };
                s.push(char::from(b'0' + d));
            }
            let ours = short_decimal(&s).unwrap_or_else(|| panic!("{s} not taken"));
            let theirs: f64 = serde_json::from_str(&s).unwrap();
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{s}");
            assert_eq!(number_value(&s).map(f64::to_bits), Some(theirs.to_bits()), "{s}");
        }
        for s in ["1", "1.0e1", "1.", ".1", "1.2.3", "1234567890123.456", "0.0000000000000001"] {
            assert!(short_decimal(s).is_none(), "{s}");
        }
    }

    #[test]
    fn member_names_sort_in_utf16_order() {
        let mut rng = StdRng::seed_from_u64(6);
        let pieces =
            ["a", "b", "\0", "é", "\u{ff}", "\u{7ff}", "\u{e000}", "\u{ffff}", "\u{10000}", "\u{10ffff}", "\\n"];
        for _ in 0..2000 {
            let names: Vec<String> = (0..2)
                .map(|_| (0..rng.random_range(0..10)).map(|_| pieces[rng.random_range(0..pieces.len())]).collect())
                .collect();
            let text =
                format!(r#"{{"{}":0,"{}":1}}"#, names[0].replace('\0', "\\u0000"), names[1].replace('\0', "\\u0000"));
            let mut tape = Tape::default();
            tape.parse(&text, 0, MAX_DEPTH).unwrap();
            let m: Vec<Member> = tape
                .members(0)
                .enumerate()
                .map(|(position, (k, v))| {
                    let name = tape.tokens()[k];
                    let prefix = prefix(tape.str(&text, name).unwrap().as_bytes());
                    Member { prefix, value: v as u32, position: position as u32 }
                })
                .collect();
            let decoded: Vec<&str> = m.iter().map(|m| tape.str(&text, tape.tokens()[m.name()]).unwrap()).collect();
            assert_eq!(decoded, names.iter().map(|n| n.replace("\\n", "\n")).collect::<Vec<_>>());
            assert_eq!(tape.cmp_names(&text, &m[0], &m[1]), cmp_utf16(decoded[0], decoded[1]), "{names:?}");
        }
    }

    #[test]
    fn remembered_orders_are_checked_not_trusted() {
        // Names whose first eight bytes and lengths agree hash alike, whatever follows.
        let object = |last: &[char]| {
            let members: Vec<String> = last.iter().enumerate().map(|(n, c)| format!(r#""samename{c}":{n}"#)).collect();
            format!("{{{}}}", members.join(","))
        };
        let mut sorter = Sorter::default();
        for last in
            [&['f', 'e', 'd', 'c', 'b', 'a'][..], &['a', 'b', 'c', 'd', 'e', 'f'], &['c', 'a', 'f', 'b', 'e', 'd']]
        {
            for text in [object(last), with_content(&object(last))] {
                let mut tape = Tape::default();
                tape.parse(&text, 0, MAX_DEPTH).unwrap();
                let (mut ours, mut theirs) = (String::new(), String::new());
                tape.write_canonical(&text, 0, &[], &mut ours, &mut sorter).unwrap();
                write_canonical_without_nulls(&Node::parse(&text).unwrap(), &[], &mut theirs).unwrap();
                assert_eq!(ours, theirs);
            }
        }
        // A repeat is caught on a remembered order too.
        let text = object(&['f', 'e', 'd', 'c', 'a', 'a']);
        let mut tape = Tape::default();
        tape.parse(&text, 0, MAX_DEPTH).unwrap();
        assert!(tape.write_canonical(&text, 0, &[], &mut String::new(), &mut sorter).is_none());
    }

    #[test]
    fn string_scan_finds_the_first_special_byte() {
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.random_range(0..10) {
                    0 => b'"',
                    1 => b'\\',
                    2 => rng.random_range(0..0x20),
                    3 => rng.random_range(0x80..=0xff),
                    _ => rng.random_range(0x20..0x80),
                })
                .collect();
            let from = rng.random_range(0..=len);
            let want = (from..len).find(|&i| bytes[i] == b'"' || bytes[i] == b'\\' || bytes[i] < 0x20);
            assert_eq!(find_string_special(&bytes, from), want, "{bytes:?} from {from}");
        }
    }
}
