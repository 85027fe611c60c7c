//! What exists in the simulated API at a given moment, and how a query selects from it.
//!
//! The data is the generated [`Stream`] (never stored) plus the little that tests and faults
//! change: expired indices, explicitly inserted notifications, and the pusher's progress.
//! A query's answer is computed from those at the simulator's `now`:
//!
//! - an item exists when it is not expired, `created > now - retention`, and
//!   `visible_at <= now`;
//! - the window `[start, end)` maps to an index range by binary search;
//! - `total` is arithmetic over the index range (subjects come in fixed blocks), corrected
//!   for expired indices, plus a per-item check only for items young enough to still be
//!   late (and for the rare `push_status` filter);
//! - a page is located by binary search on "how many matching items come before index x",
//!   then read by walking, so neither a count query nor a deep offset touches every item.
//!
//! Ordering: `(createdTimestamp, generated before inserted, index or insertion number)`.
//! It is stable across pages of an unchanged data set; the poller must not rely on it.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::Value;

use super::generate::{ALL_SUBJECTS, SALT_DROP, Stream, subscription_name, unit};
use super::generate::{SUBJECTS, subject_index};

/// Identifies one notification of the simulator: item `i` of the generated stream, or the
/// n-th explicitly inserted notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKey {
    Generated(u64),
    Inserted(u64),
}

/// The four `pushStatus` values.
pub const PUSH_STATUSES: [&str; 4] = ["FAILED", "PENDING", "DELIVERED", "NOT_APPLICABLE"];

/// An explicitly inserted notification.
#[derive(Debug, Clone)]
pub(crate) struct Inserted {
    pub visible_at_ms: i64,
    pub subject: String,
    pub subscription: Option<String>,
    /// `pushStatus` as given in the inserted JSON, if any.
    pub push_status: Option<String>,
    /// The object as given, `pushStatus` removed (it is set when served).
    pub value: Value,
    pub id: String,
}

/// The pusher's progress over the generated stream.
#[derive(Debug, Default)]
pub(crate) struct PushState {
    /// Whether a push target is configured at all.
    pub enabled: bool,
    /// Every index below `scan` has been handled (pushed, dropped, deferred or in flight).
    pub scan: u64,
    /// Being sent right now.
    pub inflight: BTreeSet<u64>,
    /// Late items seen by the scan that are not visible yet.
    pub deferred: BTreeSet<u64>,
    /// Items whose delivery failed after every attempt.
    pub failed: BTreeSet<u64>,
    /// Delivered items to send a second time.
    pub duplicates: VecDeque<u64>,
}

/// Everything mutable about the data.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub expired: BTreeSet<u64>,
    /// Inserted notifications by (created ms, insertion number).
    pub inserted: BTreeMap<(i64, u64), Inserted>,
    /// Insertion number → created ms, to find an inserted item by its key.
    pub inserted_at: HashMap<u64, i64>,
    pub next_seq: u64,
    pub push: PushState,
    /// When the stream generates nothing for a subject (its subscription deleted or inactive).
    pub gaps: Gaps,
}

/// Per generated subject, the creation-time spans `[from_ms, to_ms)` in which the stream's
/// subscription for it did not exist or was inactive: items created then were never
/// generated (SPEC 9: notifications only for subscriptions that exist and are active).
/// Spans of a subject are disjoint and in order; the last may be open (`to_ms = i64::MAX`).
#[derive(Debug, Default)]
pub(crate) struct Gaps {
    pub spans: [Vec<(i64, i64)>; 7],
}

impl Gaps {
    /// Whether subject `k` generated nothing at `ms`.
    pub fn covers(&self, k: usize, ms: i64) -> bool {
        self.spans.get(k).is_some_and(|v| v.iter().any(|&(a, b)| a <= ms && ms < b))
    }

    /// Subject `k` stops (`generating = false`) or starts generating at `now_ms`.
    pub fn set(&mut self, k: usize, generating: bool, now_ms: i64) {
        let Some(spans) = self.spans.get_mut(k) else { return };
        let open = spans.last().is_some_and(|&(_, b)| b == i64::MAX);
        match (generating, open) {
            (false, false) => spans.push((now_ms, i64::MAX)),
            (true, true) => {
                if let Some(last) = spans.last_mut() {
                    last.1 = now_ms;
                    if last.0 >= last.1 {
                        spans.pop();
                    }
                }
            }
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.spans.iter().all(Vec::is_empty)
    }
}

/// The selection of one query.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// `createdTimestamp` in `[lo_ms, hi_ms)`.
    pub lo_ms: i64,
    pub hi_ms: i64,
    pub subject: Option<String>,
    pub subscriptions: Option<Vec<String>>,
    pub push_statuses: Option<Vec<String>>,
}

impl Filter {
    pub fn window(lo_ms: i64, hi_ms: i64) -> Self {
        Filter { lo_ms, hi_ms, subject: None, subscriptions: None, push_statuses: None }
    }

    /// The generated subjects this filter can match (generated items have one subscription
    /// per subject, so both filters reduce to a subject set).
    fn subject_mask(&self) -> u8 {
        let mut mask = ALL_SUBJECTS;
        if let Some(s) = &self.subject {
            mask &= subject_index(s).map_or(0, |k| 1 << k);
        }
        if let Some(names) = &self.subscriptions {
            let by_name =
                (0..SUBJECTS.len()).filter(|&k| names.contains(&subscription_name(k))).fold(0u8, |m, k| m | 1 << k);
            mask &= by_name;
        }
        mask
    }

    fn matches_inserted(&self, item: &Inserted, status: &str) -> bool {
        self.subject.as_ref().is_none_or(|s| *s == item.subject)
            && self
                .subscriptions
                .as_ref()
                .is_none_or(|names| item.subscription.as_ref().is_some_and(|n| names.contains(n)))
            && self.push_statuses.as_ref().is_none_or(|p| p.iter().any(|s| s == status))
    }
}

/// One answer: `total` and the keys of the requested page, in order, with their push status.
#[derive(Debug)]
pub(crate) struct Page {
    pub total: u64,
    pub items: Vec<(ItemKey, &'static str)>,
}

/// The data as seen at one instant. Counts the per-item checks it makes (`scanned`), so
/// tests can assert on the work a query costs rather than on wall time.
pub(crate) struct View<'a> {
    pub stream: &'a Stream,
    pub state: &'a State,
    pub now_ms: i64,
    pub retention_ms: i64,
    pub drop_fraction: f64,
    pub scanned: Cell<u64>,
}

impl View<'_> {
    fn oldest_ms(&self) -> i64 {
        // Exists while created > now - retention.
        self.now_ms.saturating_sub(self.retention_ms).saturating_add(1)
    }

    /// Whether generated item `i` exists now (its index already within the time range).
    fn gen_exists(&self, i: u64) -> bool {
        self.scanned.set(self.scanned.get() + 1);
        !self.state.expired.contains(&i) && self.stream.visible_at_ms(i) <= self.now_ms && !self.gapped(i)
    }

    /// Whether generated item `i` falls in a gap of its subject (never generated).
    pub fn gapped(&self, i: u64) -> bool {
        !self.state.gaps.is_empty() && self.state.gaps.covers(self.stream.subject(i), self.stream.created_ms(i))
    }

    /// Items of `mask` with index in `[a, b)` that fall in a gap (arithmetic per gap).
    fn gap_count(&self, a: u64, b: u64, mask: u8) -> u64 {
        let mut n = 0;
        for (k, spans) in self.state.gaps.spans.iter().enumerate() {
            if mask & (1 << k) == 0 {
                continue;
            }
            for &(from, to) in spans {
                let lo = self.stream.first_at_or_after(from).max(a);
                let hi = self.stream.first_at_or_after(to).min(b);
                n += self.stream.count_subjects(lo, hi, 1 << k);
            }
        }
        n
    }

    /// Whether push drops item `i` on purpose (deterministic).
    pub fn dropped(&self, i: u64) -> bool {
        self.drop_fraction > 0.0 && unit(self.stream.seed, i, SALT_DROP) < self.drop_fraction
    }

    /// `pushStatus` of generated item `i` in the pull copy.
    pub fn gen_push_status(&self, i: u64) -> &'static str {
        let push = &self.state.push;
        if !push.enabled {
            "NOT_APPLICABLE"
        } else if i >= push.scan || push.inflight.contains(&i) || push.deferred.contains(&i) {
            "PENDING"
        } else if self.dropped(i) || push.failed.contains(&i) {
            "FAILED"
        } else {
            "DELIVERED"
        }
    }

    /// `pushStatus` of an inserted item: as inserted, else FAILED when push is on (the
    /// simulator never pushes inserted items), else NOT_APPLICABLE.
    fn ins_push_status(&self, item: &Inserted) -> &'static str {
        match item.push_status.as_deref() {
            Some(s) => PUSH_STATUSES.iter().find(|p| **p == s).copied().unwrap_or("FAILED"),
            None if self.state.push.enabled => "FAILED",
            None => "NOT_APPLICABLE",
        }
    }

    fn gen_matches(&self, i: u64, mask: u8, f: &Filter) -> bool {
        mask & (1 << self.stream.subject(i)) != 0
            && self.gen_exists(i)
            && f.push_statuses.as_ref().is_none_or(|p| p.iter().any(|s| s == self.gen_push_status(i)))
    }

    /// The generated index range `[a, b)` that can hold matching items.
    fn range(&self, f: &Filter) -> (u64, u64) {
        let a = self.stream.first_at_or_after(f.lo_ms.max(self.oldest_ms()));
        let b =
            self.stream.first_at_or_after(f.hi_ms).min(self.stream.first_at_or_after(self.now_ms.saturating_add(1)));
        (a, b.max(a))
    }

    /// Matching generated items with index in `[a, x)`.
    fn gen_count(&self, a: u64, x: u64, mask: u8, f: &Filter) -> u64 {
        if x <= a || mask == 0 {
            return 0;
        }
        if f.push_statuses.is_some() {
            return (a..x).filter(|&i| self.gen_matches(i, mask, f)).count() as u64;
        }
        // Items created at or before now - late_by are visible whether late or not: only
        // the expired ones need subtracting. Younger ones are checked one by one.
        let settled_end = if self.stream.late_fraction > 0.0 && self.stream.late_by_ms > 0 {
            let c = self.stream.first_at_or_after(self.now_ms.saturating_sub(self.stream.late_by_ms).saturating_add(1));
            c.clamp(a, x)
        } else {
            x
        };
        let expired = self
            .state
            .expired
            .range(a..settled_end)
            .filter(|&&i| mask & (1 << self.stream.subject(i)) != 0 && !self.gapped(i))
            .count() as u64;
        self.scanned.set(self.scanned.get() + expired);
        let settled = self.stream.count_subjects(a, settled_end, mask) - expired - self.gap_count(a, settled_end, mask);
        let recent = (settled_end..x).filter(|&i| self.gen_matches(i, mask, f)).count() as u64;
        settled + recent
    }

    /// Matching inserted items in the window, in order.
    fn inserted(&self, f: &Filter) -> Vec<(i64, u64, &'static str)> {
        let oldest = self.oldest_ms();
        self.state
            .inserted
            .range((f.lo_ms.max(oldest), 0)..(f.hi_ms.max(f.lo_ms.max(oldest)), 0))
            .filter(|(_, item)| item.visible_at_ms <= self.now_ms)
            .filter_map(|(&(ms, seq), item)| {
                let status = self.ins_push_status(item);
                f.matches_inserted(item, status).then_some((ms, seq, status))
            })
            .collect()
    }

    /// `total` and the page `[offset, offset + limit)` of the items matching `f`.
    pub fn page(&self, f: &Filter, offset: u64, limit: u64) -> Page {
        let mask = f.subject_mask();
        let (a, b) = self.range(f);
        let ins = self.inserted(f);
        let total = self.gen_count(a, b, mask, f) + ins.len() as u64;
        let mut items = Vec::new();
        if limit == 0 || offset >= total {
            return Page { total, items };
        }
        // Position of the first item at or after generated index x in the merged order.
        let ins_before = |x: u64| -> usize {
            if x >= b {
                ins.len()
            } else {
                let created = self.stream.created_ms(x);
                ins.partition_point(|(ms, _, _)| *ms < created)
            }
        };
        let position = |x: u64| self.gen_count(a, x, mask, f) + ins_before(x) as u64;
        // Largest x in [a, b] with position(x) <= offset (position is non-decreasing).
        let (mut g, mut p, mut pos) = if position(a) > offset {
            (a, 0usize, 0u64)
        } else {
            let (mut lo, mut hi) = (a, b);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if position(mid) <= offset {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            (lo, ins_before(lo), position(lo))
        };
        // Walk the merged order from there.
        while (items.len() as u64) < limit {
            while g < b && !self.gen_matches(g, mask, f) {
                g += 1;
            }
            let take_gen = match (g < b, ins.get(p)) {
                (false, None) => break,
                (true, None) => true,
                (false, Some(_)) => false,
                // At equal milliseconds generated items come first.
                (true, Some((ms, _, _))) => self.stream.created_ms(g) <= *ms,
            };
            let item = if take_gen {
                g += 1;
                (ItemKey::Generated(g - 1), self.gen_push_status(g - 1))
            } else {
                p += 1;
                (ItemKey::Inserted(ins[p - 1].1), ins[p - 1].2)
            };
            if pos >= offset {
                items.push(item);
            }
            pos += 1;
        }
        Page { total, items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_800_000_000_000;

    fn stream(late_fraction: f64) -> Stream {
        Stream { seed: 3, start_ms: T0, rate: 10.0, count: Some(2000), late_fraction, late_by_ms: 30_000 }
    }

    fn view<'a>(s: &'a Stream, st: &'a State, now_ms: i64) -> View<'a> {
        View { stream: s, state: st, now_ms, retention_ms: 7 * 86_400_000, drop_fraction: 0.0, scanned: Cell::new(0) }
    }

    /// The brute-force answer: every item, checked one by one.
    fn brute(v: &View<'_>, f: &Filter) -> Vec<ItemKey> {
        let mut all: Vec<(i64, u8, u64, ItemKey)> = Vec::new();
        for i in 0..v.stream.count.unwrap() {
            let created = v.stream.created_ms(i);
            let mask = f.subject_mask();
            if created >= f.lo_ms
                && created < f.hi_ms
                && created > v.now_ms - v.retention_ms
                && v.gen_matches(i, mask, f)
            {
                all.push((created, 0, i, ItemKey::Generated(i)));
            }
        }
        for (&(ms, seq), item) in &v.state.inserted {
            let status = v.ins_push_status(item);
            if ms >= f.lo_ms
                && ms < f.hi_ms
                && ms > v.now_ms - v.retention_ms
                && item.visible_at_ms <= v.now_ms
                && f.matches_inserted(item, status)
            {
                all.push((ms, 1, seq, ItemKey::Inserted(seq)));
            }
        }
        all.sort();
        all.into_iter().map(|x| x.3).collect()
    }

    fn insert(st: &mut State, ms: i64, subject: &str) {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.inserted_at.insert(seq, ms);
        st.inserted.insert(
            (ms, seq),
            Inserted {
                visible_at_ms: ms,
                subject: subject.into(),
                subscription: Some("other".into()),
                push_status: None,
                value: json!({}),
                id: format!("ins{seq}"),
            },
        );
    }

    #[test]
    fn gaps_remove_exactly_the_items_created_while_a_subscription_was_off() {
        let s = stream(0.2);
        let mut st = State::default();
        for i in (0..2000).step_by(41) {
            st.expired.insert(i);
        }
        let now = s.created_ms(1800);
        let before = brute(&view(&s, &st, now), &Filter::window(T0, now + 1));
        // Subject 1 off between items 300 and 900, subject 4 off from item 1200 on.
        st.gaps.set(1, false, s.created_ms(300));
        st.gaps.set(1, true, s.created_ms(900));
        st.gaps.set(4, false, s.created_ms(1200));
        st.gaps.set(4, false, s.created_ms(1300)); // already off: no second span
        assert_eq!(st.gaps.spans[4].len(), 1);
        let v = view(&s, &st, now);
        let kept: Vec<ItemKey> =
            before.iter().copied().filter(|k| !matches!(k, ItemKey::Generated(i) if v.gapped(*i))).collect();
        assert!(before.len() - kept.len() > 100, "{} of {} in gaps", before.len() - kept.len(), before.len());
        for f in [
            Filter::window(T0, now + 1),
            Filter::window(s.created_ms(250), s.created_ms(1250)),
            Filter { subject: Some(SUBJECTS[1].into()), ..Filter::window(T0, now + 1) },
            Filter { subscriptions: Some(vec![subscription_name(4)]), ..Filter::window(T0, now + 1) },
        ] {
            let want = brute(&v, &f);
            let page = v.page(&f, 0, u64::MAX);
            assert_eq!(page.total as usize, want.len(), "{f:?}");
            assert_eq!(page.items.iter().map(|x| x.0).collect::<Vec<_>>(), want, "{f:?}");
            let mut paged = Vec::new();
            for offset in (0..page.total).step_by(13) {
                paged.extend(v.page(&f, offset, 13).items.iter().map(|x| x.0));
            }
            assert_eq!(paged, want, "{f:?}");
        }
        assert_eq!(brute(&v, &Filter::window(T0, now + 1)), kept);
        assert_eq!(v.page(&Filter::window(T0, now + 1), 0, 0).total as usize, kept.len());
    }

    #[test]
    fn pages_match_brute_force_under_every_complication() {
        let s = stream(0.2);
        let mut st = State::default();
        for i in (0..2000).step_by(37) {
            st.expired.insert(i);
        }
        let created_100 = s.created_ms(100);
        insert(&mut st, created_100, "CLEARING");
        insert(&mut st, created_100, "CLEARING");
        insert(&mut st, s.created_ms(1500) + 1, "NEW_SUBJECT");
        insert(&mut st, T0 - 5, "CLEARING");
        // now: the stream is still being created, and the last 30 s hold late items.
        let now = s.created_ms(1800);
        let v = view(&s, &st, now);
        let filters = [
            Filter::window(T0 - 10, T0 + 1_000_000),
            Filter::window(s.created_ms(100), s.created_ms(700)),
            Filter { subject: Some("CLEARING".into()), ..Filter::window(T0, now + 1) },
            Filter { subscriptions: Some(vec!["sim-clearing".into(), "other".into()]), ..Filter::window(T0, now + 1) },
            Filter { push_statuses: Some(vec!["NOT_APPLICABLE".into()]), ..Filter::window(T0, now) },
            Filter { push_statuses: Some(vec!["DELIVERED".into()]), ..Filter::window(T0, now) },
            Filter::window(now, now + 10),
        ];
        for f in &filters {
            let want = brute(&v, f);
            let page = v.page(f, 0, u64::MAX);
            assert_eq!(page.total as usize, want.len(), "{f:?}");
            let got: Vec<ItemKey> = page.items.iter().map(|x| x.0).collect();
            assert_eq!(got, want, "{f:?}");
            for limit in [7u64, 200] {
                let mut paged = Vec::new();
                let mut offset = 0;
                while offset < page.total {
                    let p = v.page(f, offset, limit);
                    assert_eq!(p.total, page.total);
                    assert!(p.items.len() as u64 <= limit);
                    paged.extend(p.items.iter().map(|x| x.0));
                    offset += limit;
                }
                assert_eq!(paged, want, "{f:?} limit {limit}");
            }
            for offset in (0..want.len()).step_by(97).chain([want.len().saturating_sub(1)]) {
                let p = v.page(f, offset as u64, 1);
                assert_eq!(p.items.first().map(|x| x.0), want.get(offset).copied());
            }
        }
    }

    #[test]
    fn a_count_query_does_not_touch_every_item() {
        // A million items over seven days, nothing late: counting an hour is arithmetic.
        let s =
            Stream { count: Some(1_000_000), rate: 1_000_000.0 / (7.0 * 86_400.0), late_fraction: 0.0, ..stream(0.0) };
        let mut st = State::default();
        st.expired.insert(500_000);
        let now = T0 + 7 * 86_400_000 - 1000;
        let v = view(&s, &st, now);
        let f = Filter::window(s.created_ms(499_000), s.created_ms(499_000) + 3_600_000);
        let page = v.page(&f, 0, 1);
        assert!(page.total > 5000, "{}", page.total);
        assert!(v.scanned.get() < 100, "scanned {}", v.scanned.get());
        // A deep offset is found by binary search, not by walking.
        let v = view(&s, &st, now);
        let all = Filter::window(T0, now);
        let deep = v.page(&all, 900_000, 10);
        assert_eq!(deep.items[0].0, ItemKey::Generated(900_001)); // 500_000 is expired
        assert!(v.scanned.get() < 10_000, "scanned {}", v.scanned.get());
    }
}
