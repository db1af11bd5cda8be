//! The per-evaluation guard: step counting, the stack-depth check, value measuring, and the
//! unwinding "trip" that aborts an evaluation that exceeds its [`Budget`](crate::Budget).
//!
//! jaq has no fuel and no cancellation, but it looks up its program table through
//! [`HasLut::lut`] before evaluating *every* term (run, path and update alike). Our [`DataT`]
//! makes that table reachable only through a [`Guard`], so each term evaluation costs one step
//! and checks how much stack the evaluation has used. When a limit is exceeded there is no error
//! channel out of `lut()`, so the guard unwinds with a private payload ([`Trip`]) that
//! [`crate::eval`] catches with `catch_unwind`. `resume_unwind` does not run the panic hook, so
//! nothing is printed and no panic escapes this crate.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use jaq_core::DataT;
use jaq_core::data::HasLut;
use jaq_json::{Map, Num, Val};

/// Marker type that tells jaq which value type and global data our filters use.
pub(crate) struct Data;

impl DataT for Data {
    type V<'a> = Val;
    type Data<'a> = &'a Guard<'a>;
}

pub(crate) type Lut = jaq_core::Lut<Data>;
pub(crate) type Filter = jaq_core::Filter<Data>;

impl<'a> HasLut<'a, Data> for &'a Guard<'a> {
    fn lut(&self) -> &'a Lut {
        self.tick();
        self.lut
    }
}

/// Payload of the unwind that aborts an evaluation; caught in [`crate::eval`].
pub(crate) struct Trip {
    pub what: &'static str,
    pub limit: u64,
}

/// Abort the running evaluation because the limit `what` (`limit`) was exceeded.
pub(crate) fn trip(what: &'static str, limit: u64) -> ! {
    std::panic::resume_unwind(Box::new(Trip { what, limit }))
}

/// Limits of one evaluation, derived from a [`crate::Budget`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub steps_max: u64,
    pub bytes_max: usize,
    pub depth_max: usize,
    pub stack_bytes_max: usize,
}

/// Approximate JSON size and nesting depth of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Measure {
    /// Length of the compact JSON text, approximately (numbers count as their digits or 8).
    pub bytes: usize,
    /// 0 for scalars, 1 + the deepest child for arrays and objects.
    pub depth: usize,
}

/// Containers smaller than this are re-measured instead of cached: cheaper than hashing.
const CACHE_BYTES_MIN: usize = 256;

/// One measured array or object, kept alive (as an allocation, not as a value) by a `Weak`.
///
/// Holding a `Weak` is what makes pointer keys sound: the allocation cannot be freed and
/// reused while we hold it, and `Arc::make_mut` never mutates an allocation that has weak
/// references (it moves the value out instead), so a live entry always describes the
/// current contents of that allocation.
enum Entry {
    Arr(Weak<Vec<Val>>, Measure),
    Obj(Weak<Map>, Measure),
}

impl Entry {
    fn live(&self) -> Option<Measure> {
        match self {
            Self::Arr(w, m) => (w.strong_count() > 0).then_some(*m),
            Self::Obj(w, m) => (w.strong_count() > 0).then_some(*m),
        }
    }
}

/// Sizes of containers measured during one evaluation, keyed by allocation address.
///
/// Without it, checking `acc + [x]` in a `reduce` would re-measure `acc` every time and make
/// accumulation quadratic.
#[derive(Default)]
struct SizeCache {
    entries: HashMap<usize, Entry>,
    sweep_at: usize,
}

impl SizeCache {
    fn get(&self, key: usize) -> Option<Measure> {
        self.entries.get(&key).and_then(Entry::live)
    }

    fn insert(&mut self, key: usize, entry: Entry) {
        if self.entries.len() >= self.sweep_at {
            self.entries.retain(|_, e| e.live().is_some());
            self.sweep_at = (self.entries.len() * 2).max(1024);
        }
        self.entries.insert(key, entry);
    }
}

/// Per-evaluation state reachable from every term evaluation and every native filter.
pub(crate) struct Guard<'a> {
    lut: &'a Lut,
    limits: Limits,
    steps: Cell<u64>,
    /// Address of a local in the frame that started the evaluation.
    stack_base: usize,
    sizes: RefCell<SizeCache>,
}

/// Address of a local of the calling frame: a cheap, portable stack-pointer approximation.
#[inline(always)]
pub(crate) fn stack_position() -> usize {
    let marker = 0u8;
    std::ptr::from_ref(&marker).addr()
}

impl<'a> Guard<'a> {
    pub fn new(lut: &'a Lut, limits: Limits, stack_base: usize) -> Self {
        Self {
            lut,
            limits,
            steps: Cell::new(0),
            stack_base,
            sizes: RefCell::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn steps(&self) -> u64 {
        self.steps.get()
    }

    /// One term evaluation: a step, plus the stack check (jaq recurses on the Rust stack).
    #[inline]
    fn tick(&self) {
        self.charge(1);
        let used = self.stack_base.abs_diff(stack_position());
        if used > self.limits.stack_bytes_max {
            trip("depth", self.limits.depth_max as u64);
        }
    }

    /// Charge `n` steps of work (used by natives whose cost grows with their input).
    #[inline]
    pub fn charge(&self, n: u64) {
        let steps = self.steps.get().saturating_add(n);
        self.steps.set(steps);
        if steps > self.limits.steps_max {
            trip("steps", self.limits.steps_max);
        }
    }

    /// Trip unless a value of this measure fits the limits.
    pub fn admit_measure(&self, m: Measure) {
        if m.bytes > self.limits.bytes_max {
            trip("output size", self.limits.bytes_max as u64);
        }
        if m.depth > self.limits.depth_max {
            trip("depth", self.limits.depth_max as u64);
        }
    }

    /// Measure a value produced during evaluation, tripping if it is too large or too deep.
    pub fn admit(&self, v: &Val) -> Measure {
        let m = self.measure(v);
        self.admit_measure(m);
        m
    }

    /// Measure a value; trips as soon as it is known to exceed the size or depth limit, so the
    /// walk never goes deeper than `depth_max` nor further than `bytes_max`.
    pub fn measure(&self, v: &Val) -> Measure {
        self.measure_at(v, 0)
    }

    fn measure_at(&self, v: &Val, level: usize) -> Measure {
        let scalar = |bytes| Measure { bytes, depth: 0 };
        match v {
            Val::Null => scalar(4),
            Val::Bool(b) => scalar(if *b { 4 } else { 5 }),
            Val::Num(n) => scalar(num_bytes(n)),
            Val::TStr(b) | Val::BStr(b) => scalar(b.len() + 2),
            Val::Arr(a) => self.container(level, Arc::as_ptr(a).addr(), a.len(), || {
                let m = self.sum(level, a.iter());
                (m, Entry::Arr(Arc::downgrade(a), m))
            }),
            Val::Obj(o) => self.container(level, Arc::as_ptr(o).addr(), o.len(), || {
                let m = self.sum_entries(level, o.iter());
                (m, Entry::Obj(Arc::downgrade(o), m))
            }),
        }
    }

    fn container(
        &self,
        level: usize,
        key: usize,
        len: usize,
        compute: impl FnOnce() -> (Measure, Entry),
    ) -> Measure {
        let depth_max = self.limits.depth_max;
        if level >= depth_max {
            trip("depth", depth_max as u64);
        }
        let cached = self.sizes.borrow().get(key);
        if let Some(m) = cached {
            if level + m.depth > depth_max {
                trip("depth", depth_max as u64);
            }
            return m;
        }
        // Walking a container is work proportional to its length.
        self.charge(len as u64 / crate::natives::ITEMS_PER_STEP);
        let (m, entry) = compute();
        if m.bytes >= CACHE_BYTES_MIN {
            self.sizes.borrow_mut().insert(key, entry);
        }
        m
    }

    /// Measure of an array with the given elements.
    fn sum<'v>(&self, level: usize, items: impl Iterator<Item = &'v Val>) -> Measure {
        let mut acc = Composite::default();
        for v in items {
            acc.push(self.measure_at(v, level + 1));
            self.check_partial(&acc);
        }
        acc.finish()
    }

    /// Measure of an object with the given entries.
    fn sum_entries<'v>(
        &self,
        level: usize,
        entries: impl Iterator<Item = (&'v Val, &'v Val)>,
    ) -> Measure {
        let mut acc = Composite::default();
        for (k, v) in entries {
            acc.push_entry(self.measure_at(k, level + 1), self.measure_at(v, level + 1));
            self.check_partial(&acc);
        }
        acc.finish()
    }

    fn check_partial(&self, acc: &Composite) {
        if acc.bytes > self.limits.bytes_max {
            trip("output size", self.limits.bytes_max as u64);
        }
    }

    /// Remember the measure of a container we computed incrementally (e.g. for `a + b`).
    pub fn record(&self, v: &Val, m: Measure) {
        if m.bytes < CACHE_BYTES_MIN {
            return;
        }
        let (key, entry) = match v {
            Val::Arr(a) => (Arc::as_ptr(a).addr(), Entry::Arr(Arc::downgrade(a), m)),
            Val::Obj(o) => (Arc::as_ptr(o).addr(), Entry::Obj(Arc::downgrade(o), m)),
            _ => return,
        };
        self.sizes.borrow_mut().insert(key, entry);
    }
}

/// Running measure of an array or object under construction.
///
/// JSON size of a container: 2 brackets, the children, a comma between children, and for
/// objects a colon per entry.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Composite {
    pub bytes: usize,
    pub depth: usize,
    pub len: usize,
}

impl Composite {
    pub fn push(&mut self, m: Measure) {
        self.bytes = self
            .bytes
            .saturating_add(m.bytes + usize::from(self.len > 0));
        self.depth = self.depth.max(m.depth);
        self.len += 1;
    }

    pub fn push_entry(&mut self, k: Measure, v: Measure) {
        let entry = Measure {
            bytes: k.bytes.saturating_add(v.bytes).saturating_add(1),
            depth: k.depth.max(v.depth),
        };
        self.push(entry);
    }

    pub fn finish(self) -> Measure {
        Measure {
            bytes: self.bytes.saturating_add(2),
            depth: self.depth + 1,
        }
    }

    /// Inverse of [`Self::finish`] for a container with `len` children.
    pub fn unfinish(m: Measure, len: usize) -> Self {
        Self {
            bytes: m.bytes.saturating_sub(2),
            depth: m.depth.saturating_sub(1),
            len,
        }
    }
}

/// Approximate printed size of a number.
pub(crate) fn num_bytes(n: &Num) -> usize {
    match n {
        Num::Int(_) | Num::Float(_) => 8,
        // log10(2) < 0.302, so this never undercounts decimal digits.
        Num::BigInt(i) => (i.bits() as usize).saturating_mul(302) / 1000 + 2,
        Num::Dec(s) => s.len(),
    }
}
