//! Hierarchical timing wheel.
//!
//! [`Wheel`] stores entries tagged with a deadline (milliseconds, `u64`, relative to the
//! wheel's own origin; the caller converts from wall/monotonic time) and hands them back
//! once time has been [advanced](Wheel::advance) past their deadline.
//!
//! # Structure
//!
//! * **Levels.** There are 6 levels of 64 slots. A slot at level `L` spans `64^L` ms, so a
//!   whole level spans `64^(L+1)` ms: level 0 has 1 ms slots (64 ms total), level 1 has
//!   64 ms slots (~4 s), ... level 5 has `2^30` ms slots (`2^36` ms, ~2.2 years, total).
//!   In other words, bits `[6L, 6L + 6)` of a deadline are its slot index ("digit") at
//!   level `L`.
//! * **Placement.** An entry due at `when > elapsed` goes to the level of the highest
//!   bit in which `when` and `elapsed` differ (divided by 6), in the slot given by `when`'s
//!   digit at that level. Entries with `when <= elapsed` go to a `ready` list that the
//!   next [`advance`](Wheel::advance) drains. Entries whose deadline differs from
//!   `elapsed` above bit 36 (further out than the wheel covers) go to an `overflow`
//!   `BTreeMap` keyed by deadline.
//! * **Bitmaps.** Each level keeps a `u64` bitmap of non-empty slots. The next occupied
//!   slot is found with `occupied.rotate_right(digit).trailing_zeros()`, where `digit` is
//!   `elapsed`'s digit at that level. Each slot also records the minimum deadline it holds,
//!   which makes [`next_deadline`](Wheel::next_deadline) exact in O(levels).
//! * **Cascade.** Advancing processes occupied slots in time order. When `elapsed` reaches
//!   the start of an occupied slot, the slot is emptied: entries that are due (deadline
//!   `<= now`) are emitted, the others are re-placed relative to the new `elapsed`, which
//!   always puts them on a strictly lower level. When `elapsed` enters a new `2^36` ms
//!   epoch, overflow entries of that epoch move into the wheel (or are emitted if due).
//!
//! # Invariants
//!
//! Between public calls, with `e = elapsed`:
//!
//! 1. Every entry at level `L` has `when > e`, agrees with `e` on all bits above
//!    `6L + 6`, and its digit at level `L` is strictly greater than `e`'s. Hence its slot
//!    starts after `e`, no occupied slot lies "behind" the cursor (the rotate never wraps),
//!    and every entry at level `L` is due later than every entry at a lower level.
//! 2. Every overflow entry lies in a later `2^36` ms epoch than `e` (so it is due later than
//!    every wheel entry).
//! 3. `ready` holds only entries inserted with `when <= e`.
//! 4. `len` is the total number of entries in `ready`, the levels and `overflow`.
//!
//! Consequently the earliest deadline is `e` if `ready` is non-empty, otherwise the minimum
//! of the first occupied slot of the lowest non-empty level, otherwise the first overflow
//! key.
//!
//! Memory per entry is the `(u64, T)` pair stored in a slot `Vec` (plus `Vec` growth slack).
//! Within one `advance` call, due entries are emitted grouped by slot in time order, but
//! are **not** sorted by deadline within a slot.

use std::collections::BTreeMap;

/// Bits of a deadline consumed per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Mask for a digit.
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Number of levels.
const LEVELS: usize = 6;
/// Number of low deadline bits covered by the levels: the wheel spans `2^36` ms.
const WHEEL_BITS: u32 = SLOT_BITS * LEVELS as u32;

/// One level: 64 slots, an occupancy bitmap and each slot's minimum deadline.
#[derive(Debug)]
struct Level<T> {
    /// Bit `s` is set iff `slots[s]` is non-empty.
    occupied: u64,
    /// Minimum deadline in each slot (`u64::MAX` when empty).
    min: [u64; SLOTS],
    slots: [Vec<(u64, T)>; SLOTS],
}

impl<T> Level<T> {
    fn new() -> Self {
        Level {
            occupied: 0,
            min: [u64::MAX; SLOTS],
            slots: std::array::from_fn(|_| Vec::new()),
        }
    }

    /// The first occupied slot at or after `digit` (cyclically), if any.
    fn next_occupied(&self, digit: u32) -> Option<usize> {
        if self.occupied == 0 {
            return None;
        }
        let offset = self.occupied.rotate_right(digit).trailing_zeros();
        Some((digit + offset) as usize % SLOTS)
    }

    fn push(&mut self, slot: usize, when: u64, item: T) {
        self.occupied |= 1 << slot;
        if when < self.min[slot] {
            self.min[slot] = when;
        }
        self.slots[slot].push((when, item));
    }

    fn take(&mut self, slot: usize) -> Vec<(u64, T)> {
        self.occupied &= !(1 << slot);
        self.min[slot] = u64::MAX;
        std::mem::take(&mut self.slots[slot])
    }
}

/// The level at which an entry due at `when` is stored when the wheel is at `elapsed`
/// (requires `when > elapsed` to be meaningful). `>= LEVELS` means overflow.
fn level_for(elapsed: u64, when: u64) -> usize {
    // `| SLOT_MASK` makes differences confined to the lowest digit map to level 0.
    let masked = (elapsed ^ when) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

/// The digit (slot index) of `t` at `level`.
fn digit(t: u64, level: usize) -> u32 {
    ((t >> (level as u32 * SLOT_BITS)) & SLOT_MASK) as u32
}

/// A hierarchical timing wheel with millisecond resolution. See the [module docs](self).
#[derive(Debug)]
pub struct Wheel<T> {
    /// Current wheel time in ms.
    elapsed: u64,
    /// Number of entries held (ready + levels + overflow).
    len: usize,
    /// Entries inserted with a deadline `<= elapsed`, returned by the next `advance`.
    ready: Vec<T>,
    levels: Box<[Level<T>]>,
    /// Entries beyond the wheel's range (later `2^36` ms epoch than `elapsed`).
    overflow: BTreeMap<u64, Vec<T>>,
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Wheel<T> {
    /// Creates an empty wheel with `elapsed == 0`.
    pub fn new() -> Self {
        Wheel {
            elapsed: 0,
            len: 0,
            ready: Vec::new(),
            levels: (0..LEVELS).map(|_| Level::new()).collect(),
            overflow: BTreeMap::new(),
        }
    }

    /// Current wheel time in ms.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the wheel holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Visits every entry held, in no particular order.
    pub fn for_each(&self, mut visit: impl FnMut(&T)) {
        self.ready.iter().for_each(&mut visit);
        for level in self.levels.iter() {
            for slot in level.slots.iter() {
                slot.iter().for_each(|(_, item)| visit(item));
            }
        }
        for items in self.overflow.values() {
            items.iter().for_each(&mut visit);
        }
    }

    /// Insert an entry due at `deadline`. If deadline <= elapsed it is due immediately and goes
    /// to the ready list returned by the next `advance`.
    pub fn insert(&mut self, deadline: u64, item: T) {
        self.len += 1;
        if deadline <= self.elapsed {
            self.ready.push(item);
        } else {
            self.place(deadline, item);
        }
    }

    /// The earliest time at which `advance` would return something; None if empty.
    ///
    /// This is exact: the earliest deadline held, or `elapsed` if some entry is already due
    /// (inserted with a deadline `<= elapsed`).
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.ready.is_empty() {
            return Some(self.elapsed);
        }
        if let Some((level, slot)) = self.next_slot() {
            return Some(self.levels[level].min[slot]);
        }
        self.overflow.keys().next().copied()
    }

    /// Move time forward to `now` (no-op if now <= elapsed) and append every entry with deadline
    /// <= now to `out`, cascading higher-level slots down as needed.
    ///
    /// Entries inserted with a deadline `<= elapsed` are appended even if `now <= elapsed`.
    /// The appended entries are not sorted by deadline.
    pub fn advance(&mut self, now: u64, out: &mut Vec<T>) {
        self.len -= self.ready.len();
        out.append(&mut self.ready);
        if now <= self.elapsed {
            return;
        }

        // Process occupied slots in time order while they start no later than `now`.
        while let Some((level, slot)) = self.next_slot() {
            let start = self.slot_start(level, slot);
            if start > now {
                break;
            }
            debug_assert!(start >= self.elapsed, "occupied slot behind the cursor");
            self.elapsed = start;
            for (when, item) in self.levels[level].take(slot) {
                if when <= now {
                    self.len -= 1;
                    out.push(item);
                } else {
                    // `when` shares the slot's digits down to `level` with `start`,
                    // so it lands on a strictly lower level.
                    self.place(when, item);
                }
            }
        }
        // Every remaining slot starts after `now`, so moving the cursor keeps all entries at
        // their level and slot (invariant 1).
        self.elapsed = now;

        // Pull in overflow entries of `now`'s epoch (and emit any from earlier epochs).
        let epoch = now >> WHEEL_BITS;
        while let Some(entry) = self.overflow.first_entry() {
            if *entry.key() >> WHEEL_BITS > epoch {
                break;
            }
            let (when, items) = entry.remove_entry();
            if when <= now {
                self.len -= items.len();
                out.extend(items);
            } else {
                for item in items {
                    self.place(when, item);
                }
            }
        }
    }

    /// Store an entry with `when > elapsed` on its level or in overflow.
    fn place(&mut self, when: u64, item: T) {
        debug_assert!(when > self.elapsed);
        let level = level_for(self.elapsed, when);
        if level >= LEVELS {
            self.overflow.entry(when).or_default().push(item);
        } else {
            let slot = digit(when, level) as usize;
            self.levels[level].push(slot, when, item);
        }
    }

    /// The next occupied slot: the first one at or after the cursor on the lowest non-empty
    /// level (which, by invariant 1, holds the earliest wheel entries).
    fn next_slot(&self) -> Option<(usize, usize)> {
        self.levels.iter().enumerate().find_map(|(level, lvl)| {
            lvl.next_occupied(digit(self.elapsed, level))
                .map(|slot| (level, slot))
        })
    }

    /// The time at which `slot` of `level` starts, in the current level window.
    fn slot_start(&self, level: usize, slot: usize) -> u64 {
        let shift = level as u32 * SLOT_BITS;
        let window_mask = (1u64 << (shift + SLOT_BITS)) - 1;
        (self.elapsed & !window_mask) | ((slot as u64) << shift)
    }

    /// Heap bytes reserved for entries (slot vectors, ready list, overflow vectors only).
    #[cfg(test)]
    fn entry_heap_bytes(&self) -> usize {
        let pair = std::mem::size_of::<(u64, T)>();
        let item = std::mem::size_of::<T>();
        let slots: usize = self
            .levels
            .iter()
            .flat_map(|l| l.slots.iter())
            .map(|v| v.capacity() * pair)
            .sum();
        let overflow: usize = self.overflow.values().map(|v| v.capacity() * item).sum();
        slots + overflow + self.ready.capacity() * item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(w: &mut Wheel<u64>, now: u64) -> Vec<u64> {
        let mut out = Vec::new();
        w.advance(now, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn empty_wheel() {
        let mut w: Wheel<u64> = Wheel::new();
        assert!(w.is_empty());
        assert_eq!(w.len(), 0);
        assert_eq!(w.elapsed(), 0);
        assert_eq!(w.next_deadline(), None);
        assert!(drain(&mut w, 1_000).is_empty());
        assert_eq!(w.elapsed(), 1_000);
        // Going backwards is a no-op.
        assert!(drain(&mut w, 10).is_empty());
        assert_eq!(w.elapsed(), 1_000);
    }

    #[test]
    fn level_for_boundaries() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, (1 << 36) - 1), 5);
        assert_eq!(level_for(0, 1 << 36), 6);
        assert_eq!(level_for(63, 64), 1);
        assert_eq!(level_for(64, 127), 0);
    }

    #[test]
    fn past_and_present_deadlines_are_ready() {
        let mut w = Wheel::new();
        w.advance(500, &mut Vec::new());
        w.insert(500, 1);
        w.insert(3, 2);
        w.insert(0, 3);
        assert_eq!(w.len(), 3);
        assert_eq!(w.next_deadline(), Some(500));
        // Returned even though time does not move.
        assert_eq!(drain(&mut w, 100), vec![1, 2, 3]);
        assert_eq!(w.elapsed(), 500);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn fires_exactly_at_deadline_on_every_level() {
        let deadlines = [
            1u64,
            2,
            63,
            64,
            65,
            127,
            128,
            4095,
            4096,
            4097,
            (1 << 18) - 1,
            1 << 18,
            (1 << 24) + 7,
            (1 << 30) + 12345,
            (1 << 36) - 1,
            1 << 36,
            (1 << 36) + 1,
            (1 << 37) + 99,
            1 << 42,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut w = Wheel::new();
        for &d in &deadlines {
            w.insert(d, d);
        }
        assert_eq!(w.len(), deadlines.len());
        for (i, &d) in deadlines.iter().enumerate() {
            assert_eq!(w.next_deadline(), Some(d));
            assert!(drain(&mut w, d - 1).is_empty(), "fired early: {d}");
            assert_eq!(w.next_deadline(), Some(d));
            assert_eq!(drain(&mut w, d), vec![d]);
            assert_eq!(w.len(), deadlines.len() - i - 1);
        }
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn one_big_jump_returns_everything() {
        let mut w = Wheel::new();
        let deadlines: Vec<u64> = (0..64).map(|i| (1u64 << i) - 1).collect();
        for &d in &deadlines {
            w.insert(d, d);
        }
        let mut out = drain(&mut w, u64::MAX);
        out.sort_unstable();
        assert_eq!(out, deadlines);
        assert!(w.is_empty());
    }

    #[test]
    fn cascade_splits_a_high_slot() {
        let mut w = Wheel::new();
        // All land in the same level-2 slot [8192, 12288).
        for d in (8192..12288).step_by(7) {
            w.insert(d, d);
        }
        let total = w.len();
        assert_eq!(w.next_deadline(), Some(8192));
        let got = drain(&mut w, 10_000);
        assert_eq!(got, (8192..=10_000).step_by(7).collect::<Vec<_>>());
        assert_eq!(w.next_deadline(), Some(10_005)); // 8192 + 7 * 259
        let rest = drain(&mut w, 20_000);
        assert_eq!(got.len() + rest.len(), total);
        assert!(rest.iter().all(|&d| d > 10_000));
    }

    #[test]
    fn duplicates_and_same_deadline() {
        let mut w = Wheel::new();
        for i in 0..10 {
            w.insert(5_000_000, i);
            w.insert(1 << 40, 100 + i);
        }
        assert_eq!(w.len(), 20);
        assert_eq!(drain(&mut w, 4_999_999), Vec::<u64>::new());
        assert_eq!(drain(&mut w, 5_000_000), (0..10).collect::<Vec<_>>());
        assert_eq!(w.next_deadline(), Some(1 << 40));
        assert_eq!(drain(&mut w, 1 << 40), (100..110).collect::<Vec<_>>());
    }

    #[test]
    fn million_entries_memory() {
        // 40-byte payload; the stored pair is 48 bytes.
        let mut w: Wheel<[u64; 5]> = Wheel::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let n = 1_000_000u64;
        for i in 0..n {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.insert(x % (3_600_000 * 24), [i; 5]);
        }
        assert_eq!(w.len(), n as usize);
        let bytes = w.entry_heap_bytes();
        assert!(bytes < 100 << 20, "{bytes} bytes");
        let mut out = Vec::new();
        w.advance(u64::MAX, &mut out);
        assert_eq!(out.len(), n as usize);
        assert!(w.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Insert at `elapsed + (raw mod 2^bits)`.
        InsertAhead(u32, u64),
        /// Insert at `elapsed - (raw mod (elapsed + 1))`.
        InsertPast(u64),
        /// Insert at `raw mod 2^bits`.
        InsertAbs(u32, u64),
        /// Advance to `elapsed + (raw mod 2^bits)`.
        AdvanceBy(u32, u64),
        /// Advance to `raw mod 2^bits` (may be in the past).
        AdvanceTo(u32, u64),
        /// Advance to `next_deadline()` (or by 1 if empty).
        AdvanceToNext,
    }

    fn masked(bits: u32, raw: u64) -> u64 {
        raw & ((1u64 << bits) - 1)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..=37, any::<u64>()).prop_map(|(b, r)| Op::InsertAhead(b, r)),
            1 => any::<u64>().prop_map(Op::InsertPast),
            2 => (0u32..=37, any::<u64>()).prop_map(|(b, r)| Op::InsertAbs(b, r)),
            3 => (0u32..=37, any::<u64>()).prop_map(|(b, r)| Op::AdvanceBy(b, r)),
            1 => (0u32..=37, any::<u64>()).prop_map(|(b, r)| Op::AdvanceTo(b, r)),
            2 => Just(Op::AdvanceToNext),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_model(ops in prop::collection::vec(op(), 1..200)) {
            let mut w: Wheel<u64> = Wheel::new();
            // Model: id -> deadline.
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut next_id = 0u64;
            let mut out = Vec::new();

            for op in ops {
                let e = w.elapsed();
                let advance_to = match op {
                    Op::InsertAhead(b, r) => {
                        let d = e.saturating_add(masked(b, r));
                        w.insert(d, next_id);
                        model.insert(next_id, d);
                        next_id += 1;
                        None
                    }
                    Op::InsertPast(r) => {
                        let d = e - r % (e + 1);
                        w.insert(d, next_id);
                        model.insert(next_id, d);
                        next_id += 1;
                        None
                    }
                    Op::InsertAbs(b, r) => {
                        let d = masked(b, r);
                        w.insert(d, next_id);
                        model.insert(next_id, d);
                        next_id += 1;
                        None
                    }
                    Op::AdvanceBy(b, r) => Some(e.saturating_add(masked(b, r))),
                    Op::AdvanceTo(b, r) => Some(masked(b, r)),
                    Op::AdvanceToNext => Some(w.next_deadline().unwrap_or(e + 1)),
                };

                if let Some(now) = advance_to {
                    out.clear();
                    w.advance(now, &mut out);
                    let effective = now.max(e);
                    prop_assert_eq!(w.elapsed(), effective);
                    out.sort_unstable();
                    let expected: Vec<u64> = model
                        .iter()
                        .filter(|(_, &d)| d <= effective)
                        .map(|(&id, _)| id)
                        .collect();
                    prop_assert_eq!(&out, &expected, "advance({}) from {}", now, e);
                    for id in &expected {
                        model.remove(id);
                    }
                }

                prop_assert_eq!(w.len(), model.len());
                prop_assert_eq!(w.is_empty(), model.is_empty());
                let earliest = model.values().min().copied();
                let nd = w.next_deadline();
                match (nd, earliest) {
                    (None, None) => {}
                    (Some(nd), Some(min)) => {
                        prop_assert!(nd >= w.elapsed());
                        prop_assert!(nd <= min.max(w.elapsed()));
                        // Our implementation is exact.
                        prop_assert_eq!(nd, min.max(w.elapsed()));
                    }
                    (nd, min) => prop_assert!(false, "next_deadline {:?} vs model {:?}", nd, min),
                }
            }

            // Everything left comes out exactly once.
            out.clear();
            w.advance(u64::MAX, &mut out);
            out.sort_unstable();
            let expected: Vec<u64> = model.keys().copied().collect();
            prop_assert_eq!(out, expected);
            prop_assert!(w.is_empty());
        }
    }
}
