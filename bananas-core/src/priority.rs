//! The weighted, starvation-free priority scheme shared by every broker.
//!
//! Each fetched slot picks a priority from a fixed cycle of ten slots:
//! six `high`, three `normal`, one `low` (the [`CYCLE`]). When the picked
//! queue is empty, the slot falls through to the other queues in
//! high → normal → low order, so no capacity is wasted. With all three
//! queues full, low therefore still gets one slot in ten and normal three:
//! a steady stream of high jobs cannot starve them.
//!
//! A worker keeps a cursor into the cycle and advances it by the number of
//! slots it asks for, so successive fetches walk the whole cycle.

use crate::job::Priority;

/// The weighted cycle: 6 high, 3 normal, 1 low, interleaved.
pub const CYCLE: [Priority; 10] = [
    Priority::High,
    Priority::Normal,
    Priority::High,
    Priority::High,
    Priority::Normal,
    Priority::High,
    Priority::Low,
    Priority::High,
    Priority::Normal,
    Priority::High,
];

/// The preferred priority for each of `n` slots, starting at `cursor`.
pub fn plan(cursor: usize, n: usize) -> impl Iterator<Item = Priority> {
    (0..n).map(move |i| CYCLE[(cursor + i) % CYCLE.len()])
}

/// The order in which queues are tried for a slot that prefers `p`:
/// the preferred one first, then the others from high to low.
pub fn fallback(p: Priority) -> [Priority; 3] {
    match p {
        Priority::High => [Priority::High, Priority::Normal, Priority::Low],
        Priority::Normal => [Priority::Normal, Priority::High, Priority::Low],
        Priority::Low => [Priority::Low, Priority::High, Priority::Normal],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_has_weights_6_3_1() {
        let count = |p| CYCLE.iter().filter(|&&q| q == p).count();
        assert_eq!(count(Priority::High), 6);
        assert_eq!(count(Priority::Normal), 3);
        assert_eq!(count(Priority::Low), 1);
    }

    #[test]
    fn plan_wraps_around() {
        let v: Vec<_> = plan(9, 3).collect();
        assert_eq!(v, vec![Priority::High, Priority::High, Priority::Normal]);
    }
}
