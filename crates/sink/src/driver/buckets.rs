//! A series' pending buckets, oldest first.
//!
//! Nearly always none or one (a running total has at most one; a delta sink has one per
//! open time bucket): that one is held inline, in the series' queue. Only more than one (an
//! outage, buckets shorter than the time between sends) goes to a deque on the heap. A deque
//! per series was one allocation per series per sink, a fifth of the driver's memory at 10k
//! series.

use std::collections::VecDeque;

use crate::point::Value;

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum Buckets {
    #[default]
    Empty,
    One(Value),
    /// Two or more.
    Many(VecDeque<Value>),
}

impl Buckets {
    pub(super) fn len(&self) -> usize {
        match self {
            Buckets::Empty => 0,
            Buckets::One(_) => 1,
            Buckets::Many(d) => d.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        matches!(self, Buckets::Empty)
    }

    pub(super) fn front(&self) -> Option<&Value> {
        match self {
            Buckets::Empty => None,
            Buckets::One(v) => Some(v),
            Buckets::Many(d) => d.front(),
        }
    }

    pub(super) fn front_mut(&mut self) -> Option<&mut Value> {
        match self {
            Buckets::Empty => None,
            Buckets::One(v) => Some(v),
            Buckets::Many(d) => d.front_mut(),
        }
    }

    pub(super) fn back_mut(&mut self) -> Option<&mut Value> {
        match self {
            Buckets::Empty => None,
            Buckets::One(v) => Some(v),
            Buckets::Many(d) => d.back_mut(),
        }
    }

    pub(super) fn push_back(&mut self, value: Value) {
        *self = match std::mem::take(self) {
            Buckets::Empty => Buckets::One(value),
            Buckets::One(first) => Buckets::Many(VecDeque::from([first, value])),
            Buckets::Many(mut d) => {
                d.push_back(value);
                Buckets::Many(d)
            }
        };
    }

    pub(super) fn push_front(&mut self, value: Value) {
        *self = match std::mem::take(self) {
            Buckets::Empty => Buckets::One(value),
            Buckets::One(first) => Buckets::Many(VecDeque::from([value, first])),
            Buckets::Many(mut d) => {
                d.push_front(value);
                Buckets::Many(d)
            }
        };
    }

    /// The oldest bucket; the deque goes back inline (and its memory is freed) once one is
    /// left.
    pub(super) fn pop_front(&mut self) -> Option<Value> {
        match std::mem::take(self) {
            Buckets::Empty => None,
            Buckets::One(v) => Some(v),
            Buckets::Many(mut d) => {
                let front = d.pop_front();
                *self = match d.len() {
                    0 => Buckets::Empty,
                    1 => d.pop_front().map_or(Buckets::Empty, Buckets::One),
                    _ => Buckets::Many(d),
                };
                front
            }
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Value> {
        let (a, b): (&[Value], &[Value]) = match self {
            Buckets::Empty => (&[], &[]),
            Buckets::One(v) => (std::slice::from_ref(v), &[]),
            Buckets::Many(d) => d.as_slices(),
        };
        a.iter().chain(b)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::point::GaugeStats;
    use tailship_model::Timestamp;

    fn value(n: u64) -> Value {
        let t = Timestamp::from_millis(n);
        Value::Gauge(GaugeStats {
            bucket: t,
            at: t,
            count: 1,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
            last: 0.0,
        })
    }

    #[derive(Clone, Debug)]
    enum Op {
        PushBack(u64),
        PushFront(u64),
        PopFront,
        SetFront(u64),
        SetBack(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..1000u64).prop_map(Op::PushBack),
            (0..1000u64).prop_map(Op::PushFront),
            Just(Op::PopFront),
            (0..1000u64).prop_map(Op::SetFront),
            (0..1000u64).prop_map(Op::SetBack),
        ]
    }

    proptest! {
        /// Whatever is done to it, it holds what a plain deque holds, in the same order, and
        /// it is inline whenever it holds fewer than two.
        #[test]
        fn behaves_as_a_deque(ops in proptest::collection::vec(op(), 0..40)) {
            let mut b = Buckets::default();
            let mut model = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushBack(n) => {
                        b.push_back(value(n));
                        model.push_back(value(n));
                    }
                    Op::PushFront(n) => {
                        b.push_front(value(n));
                        model.push_front(value(n));
                    }
                    Op::PopFront => prop_assert_eq!(b.pop_front(), model.pop_front()),
                    Op::SetFront(n) => {
                        if let (Some(x), Some(y)) = (b.front_mut(), model.front_mut()) {
                            *x = value(n);
                            *y = value(n);
                        }
                    }
                    Op::SetBack(n) => {
                        if let (Some(x), Some(y)) = (b.back_mut(), model.back_mut()) {
                            *x = value(n);
                            *y = value(n);
                        }
                    }
                }
                prop_assert_eq!(b.len(), model.len());
                prop_assert_eq!(b.is_empty(), model.is_empty());
                prop_assert_eq!(b.front(), model.front());
                prop_assert!(b.iter().eq(model.iter()));
                prop_assert_eq!(matches!(b, Buckets::Many(_)), model.len() >= 2);
            }
        }
    }
}
