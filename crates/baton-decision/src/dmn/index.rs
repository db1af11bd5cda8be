//! A column index for decision tables: each input value is looked up once
//! per column and gives the set of rules (a bitset) whose cell in that
//! column matches it. Intersecting the columns' sets gives the matching
//! rules without testing cell by cell.
//!
//! A column is indexed when every cell in it is `-` or made of compiled
//! literal tests of one family:
//!
//! - strings (`"US", "CA"`, `not("x")`): a string input is looked up among
//!   the literals; every other string shares one rule set.
//! - numbers (`< 18`, `[18..25)`, `= 5`, `7`): the literals' end points cut
//!   the number line into segments (each end point alone, and the open
//!   stretches between them); every number in a segment compares the same
//!   way with every end point, so it matches the same rules. An input is
//!   placed by binary search.
//!
//! Null and values of other types each have one precomputed set. Every set
//! is computed at compile time by running the compiled cells themselves on
//! a representative value, so the index agrees with cell-by-cell matching
//! by construction. Columns that cannot be indexed (expressions, `?`,
//! dates, mixed families) are checked rule by rule, only for the rules the
//! indexed columns leave.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use rust_decimal::Decimal;

use super::table::Rule;
use crate::feel::cells::{Cell, NumKey, Probe, Test};
use crate::feel::value::{Value, str_eq};
use crate::feel::{Evaluator, NoHost};

/// Rule sets of up to this many 64-bit words stay on the stack.
pub const INLINE_WORDS: usize = 4;

/// Beyond this many distinct literals a string column uses a hash map.
const LINEAR_KEYS_MAX: usize = 16;

/// FNV-1a: a small, fast hash for short string keys (no HashDoS concern:
/// the keys are the model's own literals).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

#[derive(Debug)]
enum Keys {
    /// Few short literals (up to 15 bytes): packed with their length into
    /// one integer each and scanned in order.
    Packed(Vec<u128>),
    /// Few literals: scanned in order.
    Linear(Vec<Arc<str>>),
    /// Many literals: hashed.
    Hashed(HashMap<Arc<str>, usize, BuildHasherDefault<Fnv>>),
}

#[derive(Debug)]
enum Lookup {
    /// Set `i` is for the `i`-th literal; the set after the last literal is
    /// for every other string.
    Str(Keys),
    /// Set `2i` is for numbers below `breaks[i]` (and above `breaks[i-1]`),
    /// set `2i+1` for `breaks[i]` itself; the last set for numbers above all.
    Num(Vec<NumKey>),
}

#[derive(Debug)]
struct Column {
    col: usize,
    lookup: Lookup,
    /// Flattened rule sets, `words` per set; after the sets of `lookup`
    /// come the set for null and the set for values of other types.
    sets: Box<[u64]>,
    n_sets: usize,
}

#[derive(Debug)]
pub struct TableIndex {
    words: usize,
    columns: Vec<Column>,
    /// Columns checked rule by rule.
    residual: Vec<usize>,
    /// Every rule.
    all: Box<[u64]>,
}

/// The test family of a column, if it has one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Str,
    Num,
}

fn test_family(t: &Test) -> Option<Family> {
    match t {
        Test::StrEq(_) => Some(Family::Str),
        Test::Interval { .. } | Test::NumEq(_) => Some(Family::Num),
        Test::Generic(_) => None,
    }
}

/// The family shared by every test of every cell in column `col`; `None`
/// when the column mixes families or has a generic test, `Some(None)` when
/// every cell is `-`.
fn column_family(rules: &[Rule], col: usize) -> Option<Option<Family>> {
    let mut fam = None;
    for r in rules {
        let ts = match &r.cells[col] {
            Cell::Any => continue,
            Cell::Tests(ts) | Cell::Not(ts) => ts,
        };
        for t in ts.iter() {
            let f = test_family(t)?;
            if fam.is_some_and(|g| g != f) {
                return None;
            }
            fam = Some(f);
        }
    }
    Some(fam)
}

impl TableIndex {
    /// Builds the index, or `None` when no column can be indexed.
    pub fn build(rules: &[Rule], n_inputs: usize) -> Option<TableIndex> {
        let words = rules.len().div_ceil(64).max(1);
        let mut columns = Vec::new();
        let mut residual = Vec::new();
        for col in 0..n_inputs {
            match column_family(rules, col) {
                // Every cell is `-`: the column constrains nothing.
                Some(None) => {}
                Some(Some(fam)) => match build_column(rules, col, fam, words) {
                    Some(c) => columns.push(c),
                    None => residual.push(col),
                },
                None => residual.push(col),
            }
        }
        if columns.is_empty() {
            return None;
        }
        let mut all = vec![0u64; words];
        for r in 0..rules.len() {
            all[r / 64] |= 1 << (r % 64);
        }
        Some(TableIndex {
            words,
            columns,
            residual,
            all: all.into(),
        })
    }

    /// Calls `hit` with each rule index that matches the input row, in rule
    /// order, until it returns `false`.
    pub fn for_each_match(
        &self,
        rules: &[Rule],
        ev: &mut Evaluator<'_>,
        vals: &[Value],
        ints: &[Option<i64>],
        mut hit: impl FnMut(u32) -> bool,
    ) {
        let mut inline = [0u64; INLINE_WORDS];
        let mut heap = Vec::new();
        let acc: &mut [u64] = if self.words <= INLINE_WORDS {
            &mut inline[..self.words]
        } else {
            heap.resize(self.words, 0);
            &mut heap
        };
        acc.copy_from_slice(&self.all);
        for c in &self.columns {
            let set = c.set_for(&Probe::with_int(&vals[c.col], ints[c.col]));
            let set = &c.sets[set * self.words..(set + 1) * self.words];
            for (a, s) in acc.iter_mut().zip(set) {
                *a &= s;
            }
        }
        for (w, word) in acc.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let r = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let rule = &rules[r];
                let ok = self.residual.iter().all(|&col| {
                    rule.cells[col].matches(ev, &Probe::with_int(&vals[col], ints[col]))
                });
                if ok && !hit(r as u32) {
                    return;
                }
            }
        }
    }
}

impl Column {
    /// Which of the column's sets applies to the input.
    #[inline]
    fn set_for(&self, p: &Probe<'_>) -> usize {
        match (&self.lookup, p.value) {
            // The last two sets: null, then other types.
            (_, Value::Null) => self.n_sets - 2,
            (Lookup::Str(keys), Value::String(s)) => match keys {
                Keys::Packed(ks) => match pack(s) {
                    Some(p) => ks.iter().position(|k| *k == p).unwrap_or(ks.len()),
                    None => ks.len(),
                },
                Keys::Linear(ks) => ks.iter().position(|k| str_eq(k, s)).unwrap_or(ks.len()),
                Keys::Hashed(map) => map.get(&**s).copied().unwrap_or(map.len()),
            },
            (Lookup::Num(breaks), Value::Number(n)) => {
                // Binary search: how many end points lie below the input, and
                // whether it equals the next one.
                let (mut lo, mut hi) = (0, breaks.len());
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    // The input compared with the end point.
                    match breaks[mid].cmp_probe(p, n) {
                        Ordering::Less => hi = mid,
                        Ordering::Greater => lo = mid + 1,
                        Ordering::Equal => return 2 * mid + 1,
                    }
                }
                2 * lo
            }
            _ => self.n_sets - 1,
        }
    }
}

/// Computes one rule set per representative value (plus null and another
/// type), by running every rule's cell in the column on it.
fn sets_for(rules: &[Rule], col: usize, reps: &[Value], words: usize) -> Box<[u64]> {
    let host = NoHost;
    let mut ev = Evaluator::new(&host);
    let other = Value::Bool(false);
    let mut sets = vec![0u64; (reps.len() + 2) * words];
    for (i, v) in reps.iter().chain([&Value::Null, &other]).enumerate() {
        let p = Probe::new(v);
        for (r, rule) in rules.iter().enumerate() {
            if rule.cells[col].matches(&mut ev, &p) {
                sets[i * words + r / 64] |= 1 << (r % 64);
            }
        }
    }
    sets.into()
}

fn build_column(rules: &[Rule], col: usize, fam: Family, words: usize) -> Option<Column> {
    let tests = rules.iter().flat_map(|r| match &r.cells[col] {
        Cell::Any => &[][..],
        Cell::Tests(ts) | Cell::Not(ts) => &ts[..],
    });
    match fam {
        Family::Str => {
            let mut keys: Vec<Arc<str>> = Vec::new();
            for t in tests {
                if let Test::StrEq(s) = t
                    && !keys.iter().any(|k| k == s)
                {
                    keys.push(s.clone());
                }
            }
            // A string that is none of the literals.
            let mut unlisted = String::from("\u{0}");
            while keys.iter().any(|k| **k == *unlisted) {
                unlisted.push('\u{0}');
            }
            let mut reps: Vec<Value> = keys.iter().map(|k| Value::String(k.clone())).collect();
            reps.push(Value::str(&unlisted));
            let sets = sets_for(rules, col, &reps, words);
            let packed: Vec<u128> = keys.iter().filter_map(|k| pack(k)).collect();
            let keys = if keys.len() <= LINEAR_KEYS_MAX && packed.len() == keys.len() {
                Keys::Packed(packed)
            } else if keys.len() <= LINEAR_KEYS_MAX {
                Keys::Linear(keys)
            } else {
                Keys::Hashed(keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect())
            };
            Some(Column {
                col,
                lookup: Lookup::Str(keys),
                n_sets: reps.len() + 2,
                sets,
            })
        }
        Family::Num => {
            let mut breaks: Vec<NumKey> = Vec::new();
            for t in tests {
                let mut add = |k: &NumKey| breaks.push(*k);
                match t {
                    Test::Interval { lo, hi } => {
                        if let Some((k, _)) = lo {
                            add(k);
                        }
                        if let Some((k, _)) = hi {
                            add(k);
                        }
                    }
                    Test::NumEq(k) => add(k),
                    _ => {}
                }
            }
            breaks.sort_by_key(NumKey::dec);
            breaks.dedup_by(|a, b| a.dec() == b.dec());
            let reps = number_representatives(&breaks)?;
            let sets = sets_for(rules, col, &reps, words);
            Some(Column {
                col,
                lookup: Lookup::Num(breaks),
                n_sets: reps.len() + 2,
                sets,
            })
        }
    }
}

/// A string of up to 15 bytes as one integer: its bytes, then its length
/// in the top byte (so that no two strings share a packing).
#[inline]
fn pack(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() > 15 {
        return None;
    }
    let mut buf = [0u8; 16];
    buf[..b.len()].copy_from_slice(b);
    buf[15] = b.len() as u8;
    Some(u128::from_le_bytes(buf))
}

/// One number per segment: below the first end point, each end point, each
/// open stretch between two end points, above the last. `None` when a
/// stretch has no decimal strictly inside it (end points 28 digits apart)
/// or the ends overflow: the column is then checked rule by rule.
fn number_representatives(breaks: &[NumKey]) -> Option<Vec<Value>> {
    let mut reps = Vec::with_capacity(2 * breaks.len() + 1);
    let two = Decimal::TWO;
    for (i, b) in breaks.iter().enumerate() {
        let b = b.dec();
        let below = match i {
            0 => b.checked_sub(Decimal::ONE)?,
            _ => {
                let a = breaks[i - 1].dec();
                (a / two).checked_add(b / two)?
            }
        };
        let lower = if i == 0 {
            None
        } else {
            Some(breaks[i - 1].dec())
        };
        if below >= b || lower.is_some_and(|a| below <= a) {
            return None;
        }
        reps.push(Value::Number(below));
        reps.push(Value::Number(b));
    }
    let above = match breaks.last() {
        Some(b) => {
            let a = b.dec().checked_add(Decimal::ONE)?;
            if a <= b.dec() {
                return None;
            }
            a
        }
        None => Decimal::ZERO,
    };
    reps.push(Value::Number(above));
    Some(reps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feel::parser::parse_unary_tests;

    const NUM_CELLS: &[&str] = &[
        "-",
        "< 18",
        "<= 18",
        "> 65",
        ">= 65",
        "[18..25)",
        "(18..25]",
        "[25..65]",
        "18",
        "= 30",
        "not(< 0)",
        "not(18, 25)",
        "[0.5..1.5)",
        "100000000000000000000000",
        "-7",
    ];
    const STR_CELLS: &[&str] = &[
        "-",
        "\"US\", \"CA\"",
        "\"US\"",
        "\"GB\", \"DE\", \"FR\"",
        "not(\"US\")",
        "\"\"",
        "\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\", \"j\"",
        // More than 15 bytes: not packed.
        "\"a very long country name\"",
        // Many literals: hashed.
        "\"k1\", \"k2\", \"k3\", \"k4\", \"k5\", \"k6\", \"k7\", \"k8\", \"k9\", \"k10\", \"k11\", \"k12\", \"k13\", \"k14\", \"k15\", \"k16\", \"k17\"",
    ];
    const MIXED_CELLS: &[&str] = &["-", "\"x\"", "< 3", "? > 3", "date(\"2020-01-01\")"];

    fn inputs() -> Vec<Value> {
        let mut v = vec![
            Value::Null,
            Value::Bool(true),
            Value::str("US"),
            Value::str("CA"),
            Value::str("DE"),
            Value::str(""),
            Value::str("x"),
            Value::str("j"),
            Value::str("zz"),
            Value::str("k7"),
            Value::str("k17"),
            Value::str("a very long country name"),
            Value::str("a very long country nam"),
            Value::Number(Decimal::new(5, 1)),
            Value::Number(Decimal::new(10, 1)),
            Value::Number(Decimal::new(180, 1)),
            Value::Number(Decimal::new(1801, 2)),
            Value::Number(Decimal::MAX),
            Value::Number(Decimal::MIN),
        ];
        for n in [
            -8, -7, -1, 0, 1, 2, 3, 4, 17, 18, 19, 24, 25, 26, 30, 64, 65, 66,
        ] {
            v.push(Value::num(n));
        }
        v
    }

    /// A small deterministic generator (no test-only dependency).
    struct Lcg(u64);
    impl Lcg {
        fn pick(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    fn table(rng: &mut Lcg, n_rules: usize) -> Vec<Rule> {
        (0..n_rules)
            .map(|_| {
                let cells = [NUM_CELLS, STR_CELLS, MIXED_CELLS]
                    .iter()
                    .map(|pool| {
                        let src = pool[rng.pick(pool.len())];
                        Cell::compile(parse_unary_tests(src, &[]).expect(src))
                    })
                    .collect();
                Rule {
                    cells,
                    outputs: Vec::new(),
                    constant: None,
                }
            })
            .collect()
    }

    /// The index finds exactly the rules that cell-by-cell matching finds,
    /// in the same order, for tables of 1 to 200 rules (several words).
    #[test]
    fn index_agrees_with_cell_by_cell_matching() {
        let host = NoHost;
        let mut rng = Lcg(7);
        let ins = inputs();
        let mut kinds = std::collections::BTreeSet::new();
        for n_rules in [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 10, 63, 64, 65, 130, 200] {
            let rules = table(&mut rng, n_rules);
            // Column 2 mixes families and `?` tests: in all but the smallest
            // tables it is checked rule by rule.
            let Some(index) = TableIndex::build(&rules, 3) else {
                continue;
            };
            if n_rules >= 10 {
                assert_eq!(index.residual, vec![2]);
            }
            if let Some(Lookup::Str(keys)) =
                index.columns.iter().find(|c| c.col == 1).map(|c| &c.lookup)
            {
                kinds.insert(match keys {
                    Keys::Packed(_) => "packed",
                    Keys::Linear(_) => "linear",
                    Keys::Hashed(_) => "hashed",
                });
            }
            for _ in 0..300 {
                let vals: Vec<Value> = (0..3).map(|_| ins[rng.pick(ins.len())].clone()).collect();
                let ints: Vec<Option<i64>> = vals.iter().map(Probe::int_key).collect();
                let mut ev = Evaluator::new(&host);
                let want: Vec<u32> = rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.cells
                            .iter()
                            .zip(&vals)
                            .all(|(c, v)| c.matches(&mut ev, &Probe::new(v)))
                    })
                    .map(|(i, _)| i as u32)
                    .collect();
                let mut got = Vec::new();
                index.for_each_match(&rules, &mut ev, &vals, &ints, |r| {
                    got.push(r);
                    true
                });
                assert_eq!(got, want, "{n_rules} rules, input {vals:?}");
            }
        }
        // Every way of looking up a string was exercised.
        assert_eq!(kinds.len(), 3, "{kinds:?}");
    }

    #[test]
    fn columns_that_cannot_be_indexed_are_residual() {
        let rules: Vec<Rule> = ["? > 3", "\"a\"", "< 4"]
            .iter()
            .map(|src| Rule {
                cells: vec![Cell::compile(parse_unary_tests(src, &[]).unwrap())].into(),
                outputs: Vec::new(),
                constant: None,
            })
            .collect();
        assert!(TableIndex::build(&rules, 1).is_none());
    }
}
