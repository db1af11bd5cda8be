//! Native filters: the jaq standard library minus host access, plus the budget-aware
//! replacements and checking filters that [`crate::rewrite`] routes user code through.
//!
//! Every filter here reaches the evaluation's [`Guard`] through the context data, so it can
//! charge steps for work jaq does outside of term evaluation and measure the values it builds.

use std::sync::Arc;

use jaq_core::box_iter::box_once;
use jaq_core::native::{Fun, bome, v};
use jaq_core::{Bind, Cv, Error, Exn, Native, ValR, ValX, ValXs};
use jaq_json::{Num, Val};

use crate::guard::{Composite, Data, Guard, Measure, num_bytes, trip};

/// Integers with more decimal digits than this are a runtime error: big-integer arithmetic
/// and printing are super-linear, so huge integers would make single steps arbitrarily slow.
pub(crate) const INT_DIGITS_MAX: usize = 4096;

/// Work of this many bytes of copying or scanning is charged as one step.
const BYTES_PER_STEP: u64 = 64;
/// Work of this many array elements or object entries is charged as one step.
pub(crate) const ITEMS_PER_STEP: u64 = 16;

pub(crate) const CHECK: &str = "__baton_check";
pub(crate) const FRAME: &str = "__baton_frame";
pub(crate) const PATH_GUARD: &str = "__baton_path_guard";
pub(crate) const ARRAY: &str = "__baton_array";
pub(crate) const COST_REGEX: &str = "__baton_cost_regex";
pub(crate) const COST_SEARCH: &str = "__baton_cost_search";

/// Name of the native filter that replaces a binary arithmetic operator.
pub(crate) fn math_name(op: jaq_core::ops::Math) -> &'static str {
    use jaq_core::ops::Math;
    match op {
        Math::Add => "__baton_add",
        Math::Sub => "__baton_sub",
        Math::Mul => "__baton_mul",
        Math::Div => "__baton_div",
        Math::Rem => "__baton_rem",
    }
}

/// Natives whose output can be a (bounded) multiple of their input's size; calls to them are
/// wrapped in [`CHECK`] so their outputs are measured like every other constructed value.
pub(crate) const GROWING: &[(&str, usize)] = &[
    ("explode", 0),
    ("implode", 0),
    ("escape_sh", 0),
    ("escape_html", 0),
    ("encode_uri", 0),
    ("encode_base64", 0),
    ("tojson", 0),
    ("tobytes", 0),
    ("key_values", 0),
    ("indices", 1),
    ("matches", 2),
    ("split_matches", 2),
    ("split_", 2),
    ("strftime", 1),
];

/// Natives whose running time is roughly the product of their input sizes.
pub(crate) const REGEX: &[(&str, usize)] = &[("matches", 2), ("split_matches", 2), ("split_", 2)];
pub(crate) const SEARCH: &[(&str, usize)] = &[("indices", 1), ("contains", 1)];

/// Natives that would give expressions access to the host or make them non-deterministic.
/// They are replaced by filters that fail, rather than removed, because jaq's own definitions
/// (e.g. `halt_error`) refer to them.
const DENIED: &[(&str, usize, &str)] = &[
    (
        "env",
        0,
        "`env` is not available: expressions cannot read the host environment",
    ),
    (
        "now",
        0,
        "`now` is not available: the time is an input of the workflow",
    ),
    ("halt", 1, "`halt` is not available in workflow expressions"),
    ("localtime", 0, "`localtime` is not available: use `gmtime`"),
    (
        "strflocaltime",
        1,
        "`strflocaltime` is not available: use `strftime`",
    ),
];

/// Names of natives implemented here instead of taken from jaq.
const REPLACED: &[(&str, usize)] = &[("range", 3), ("fromjson", 0)];

fn guard<'a>(cv: &Cv<'a, Data>) -> &'a Guard<'a> {
    cv.0.data()
}

fn fail<T>(msg: impl std::fmt::Display) -> Result<T, Error<Val>> {
    Err(Error::str(msg))
}

/// The complete set of native filters for compiled expressions.
pub(crate) fn all() -> Vec<Fun<Data>> {
    let upstream = jaq_core::funs::<Data>()
        .chain(jaq_std::funs::<Data>())
        .chain(jaq_json::funs::<Data>());
    let overridden = |name: &str, arity: usize| {
        let same = |(n, a): &(&str, usize)| *n == name && *a == arity;
        REPLACED.iter().any(same) || DENIED.iter().any(|(n, a, _)| same(&(*n, *a)))
    };
    let mut funs: Vec<Fun<Data>> = upstream
        .filter(|(name, args, _)| !overridden(name, args.len()))
        .collect();
    funs.extend(denied());
    funs.extend(ours());
    funs
}

fn denied() -> Vec<Fun<Data>> {
    // Natives are plain function pointers, so each message needs its own function.
    macro_rules! deny {
        ($i:expr) => {
            |_| bome(fail(DENIED[$i].2))
        };
    }
    let runs: [jaq_core::RunPtr<Data>; 5] = [deny!(0), deny!(1), deny!(2), deny!(3), deny!(4)];
    DENIED
        .iter()
        .zip(runs)
        .map(|((name, arity, _), run)| (*name, v(*arity), Native::<Data>::new(run)))
        .collect()
}

fn ours() -> Vec<Fun<Data>> {
    let fun = || -> Box<[Bind]> { [Bind::Fun(())].into() };
    let mut funs: Vec<Fun<Data>> = vec![
        (
            CHECK,
            fun(),
            Native::<Data>::new(check_run)
                .with_paths(|mut cv| {
                    let (f, fc) = cv.0.pop_fun();
                    f.paths((fc, cv.1))
                })
                .with_update(|mut cv, upd| {
                    let (f, fc) = cv.0.pop_fun();
                    f.update((fc, cv.1), upd)
                }),
        ),
        (
            FRAME,
            fun(),
            Native::<Data>::new(|mut cv| {
                let (f, fc) = cv.0.pop_fun();
                f.run((fc, cv.1))
            })
            .with_paths(|mut cv| {
                let (f, fc) = cv.0.pop_fun();
                f.paths((fc, cv.1))
            })
            .with_update(|mut cv, upd| {
                let (f, fc) = cv.0.pop_fun();
                f.update((fc, cv.1), upd)
            }),
        ),
        (
            PATH_GUARD,
            v(0),
            Native::<Data>::new(|_| Box::new(std::iter::empty()))
                .with_paths(|cv| {
                    // A path longer than the depth limit cannot lead into any admitted value;
                    // only a loop indexing `null` (e.g. `path(recurse(.a))`) builds one.
                    let depth_max = cv.0.data().limits().depth_max;
                    if cv.1.1.iter().nth(depth_max).is_some() {
                        trip("depth", depth_max as u64);
                    }
                    Box::new(std::iter::empty())
                })
                .with_update(|cv, _| box_once(Ok(cv.1))),
        ),
        (ARRAY, fun(), Native::<Data>::new(array_run)),
        ("range", v(3), Native::<Data>::new(range_run)),
        ("fromjson", v(0), Native::<Data>::new(fromjson_run)),
        (COST_REGEX, v(2), Native::<Data>::new(cost_regex_run)),
        (COST_SEARCH, v(1), Native::<Data>::new(cost_search_run)),
    ];
    let math: [(jaq_core::ops::Math, jaq_core::RunPtr<Data>); 5] = {
        use jaq_core::ops::Math::*;
        [
            (Add, |cv| binary(cv, add)),
            (Sub, |cv| binary(cv, sub)),
            (Mul, |cv| binary(cv, mul)),
            (Div, |cv| binary(cv, div)),
            (Rem, |cv| binary(cv, rem)),
        ]
    };
    funs.extend(math.map(|(op, run)| (math_name(op), v(2), Native::<Data>::new(run))));
    funs
}

/// `__baton_check(f)`: the outputs of `f`, each measured against the size and depth limits.
fn check_run(mut cv: Cv<'_, Data>) -> ValXs<'_, Val> {
    let g = guard(&cv);
    let (f, fc) = cv.0.pop_fun();
    Box::new(f.run((fc, cv.1)).inspect(move |y| {
        if let Ok(y) = y {
            g.admit(y);
        }
    }))
}

/// `__baton_array(f)`: `[f]`, measured while it is collected so a huge array trips early.
fn array_run(mut cv: Cv<'_, Data>) -> ValXs<'_, Val> {
    let g = guard(&cv);
    let (f, fc) = cv.0.pop_fun();
    let mut acc = Composite::default();
    let mut items = Vec::new();
    for y in f.run((fc, cv.1)) {
        match y {
            Ok(y) => {
                acc.push(g.measure(&y));
                g.admit_measure(Measure {
                    bytes: acc.bytes,
                    depth: acc.depth + 1,
                });
                items.push(y);
            }
            Err(e) => return box_once(Err(e)),
        }
    }
    let m = acc.finish();
    g.admit_measure(m);
    let out = Val::Arr(Arc::new(items));
    g.record(&out, m);
    box_once(Ok(out))
}

/// `range($from; $to; $by)` as in jaq, but every output costs a step: jaq's own `range` loops
/// in Rust, so `last(range(1e12))` would never reach a term evaluation.
fn range_run(mut cv: Cv<'_, Data>) -> ValXs<'_, Val> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let g = guard(&cv);
    let by = cv.0.pop_var();
    let to = cv.0.pop_var();
    let from = cv.0.pop_var();
    let dir = by.partial_cmp(&Val::from(0isize)).unwrap_or(Equal);
    let mut next: Option<ValX<'_, Val>> = Some(Ok(from));
    Box::new(std::iter::from_fn(move || {
        let x = match next.take()? {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let more = match dir {
            Greater => x < to,
            Less => x > to,
            Equal => x != to,
        };
        if !more {
            return None;
        }
        g.charge(1);
        next = Some(add(g, x.clone(), by.clone()).map_err(Exn::from));
        Some(Ok(x))
    }))
}

/// `fromjson`, with the nesting depth and number lengths checked before parsing: the parser
/// recurses once per nesting level and big-integer parsing is quadratic.
fn fromjson_run(cv: Cv<'_, Data>) -> ValXs<'_, Val> {
    let g = guard(&cv);
    let text = match cv.1.try_as_utf8_bytes_owned() {
        Ok(text) => text,
        Err(e) => return bome(Err(e)),
    };
    g.charge(text.len() as u64 / BYTES_PER_STEP);
    g.admit_measure(Measure {
        bytes: text.len(),
        depth: 0,
    });
    if let Err(e) = prescan_json(&text, g.limits().depth_max) {
        return bome(fail(format_args!("cannot parse {} as JSON: {e}", cv.1)));
    }
    let input = cv.1;
    let values: Vec<ValX<'_, Val>> = jaq_json::read::parse_many(&text)
        .map(|r| match r {
            Ok(v) => {
                g.admit(&v);
                Ok(v)
            }
            Err(e) => Err(Exn::from(Error::str(format_args!(
                "cannot parse {input} as JSON: {e}"
            )))),
        })
        .collect();
    Box::new(values.into_iter())
}

/// Reject JSON text nested deeper than `depth_max` or with overly long numbers, in one pass
/// that skips over strings.
fn prescan_json(text: &[u8], depth_max: usize) -> Result<(), String> {
    let (mut depth, mut digits) = (0usize, 0usize);
    let mut bytes = text.iter();
    while let Some(&b) = bytes.next() {
        if b.is_ascii_digit() {
            digits += 1;
            if digits > INT_DIGITS_MAX {
                return Err(format!("number with more than {INT_DIGITS_MAX} digits"));
            }
            continue;
        }
        digits = 0;
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > depth_max {
                    return Err(format!("nesting deeper than {depth_max}"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' => {
                while let Some(&c) = bytes.next() {
                    match c {
                        b'\\' => {
                            bytes.next();
                        }
                        b'"' => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn byte_len(v: &Val) -> usize {
    match v {
        Val::TStr(b) | Val::BStr(b) => b.len(),
        Val::Arr(a) => a.len(),
        _ => 1,
    }
}

/// `__baton_cost_regex($re; $flags)`: charge for a regex match over the input before it runs.
/// regex-bites is a Pike VM: time grows with text length times pattern size.
fn cost_regex_run(mut cv: Cv<'_, Data>) -> ValXs<'_, Val> {
    let g = guard(&cv);
    let _flags = cv.0.pop_var();
    let re = cv.0.pop_var();
    let work = (byte_len(&cv.1) as u64 + 1).saturating_mul(byte_len(&re) as u64 + 1);
    g.charge(work / (BYTES_PER_STEP * 4));
    Box::new(std::iter::empty())
}

/// `__baton_cost_search($x)`: charge for `indices($x)` / `contains($x)`, which compare the
/// needle at every position of the haystack.
fn cost_search_run(mut cv: Cv<'_, Data>) -> ValXs<'_, Val> {
    let g = guard(&cv);
    let needle = cv.0.pop_var();
    let work = (byte_len(&cv.1) as u64 + 1).saturating_mul(byte_len(&needle) as u64 + 1);
    g.charge(work / (BYTES_PER_STEP * 4));
    Box::new(std::iter::empty())
}

type BinOp = for<'a> fn(&'a Guard<'a>, Val, Val) -> ValR<Val>;

fn binary(mut cv: Cv<'_, Data>, op: BinOp) -> ValXs<'_, Val> {
    let g = guard(&cv);
    // Drop our handle on the input first: when it is also the left operand (`. + [1]` in a
    // `reduce`), jaq can then extend the array in place instead of copying it.
    drop(cv.1);
    let r = cv.0.pop_var();
    let l = cv.0.pop_var();
    bome(op(g, l, r))
}

fn int_digits(v: &Val) -> usize {
    match v {
        Val::Num(n @ Num::BigInt(_)) => num_bytes(n),
        _ => 0,
    }
}

/// Fail if an integer result is too long; see [`INT_DIGITS_MAX`].
fn check_int(v: Val) -> ValR<Val> {
    if int_digits(&v) > INT_DIGITS_MAX {
        return fail(format_args!(
            "integer result has more than {INT_DIGITS_MAX} digits"
        ));
    }
    Ok(v)
}

fn add<'a>(g: &'a Guard<'a>, l: Val, r: Val) -> ValR<Val> {
    match (&l, &r) {
        (Val::Num(_), Val::Num(_)) => check_int((l + r)?),
        (Val::TStr(a) | Val::BStr(a), Val::TStr(b) | Val::BStr(b)) => {
            let len = a.len().saturating_add(b.len());
            g.admit_measure(Measure {
                bytes: len + 2,
                depth: 0,
            });
            // jaq appends in place when it owns the left string alone, else it copies it.
            let copied = if a.is_unique() { b.len() } else { len };
            g.charge(copied as u64 / BYTES_PER_STEP);
            l + r
        }
        (Val::Arr(a), Val::Arr(b)) => {
            let (ma, mb) = (g.measure(&l), g.measure(&r));
            let mut acc = Composite::unfinish(ma, a.len());
            let right = Composite::unfinish(mb, b.len());
            if right.len > 0 {
                acc.bytes = acc
                    .bytes
                    .saturating_add(right.bytes)
                    .saturating_add(usize::from(acc.len > 0));
                acc.depth = acc.depth.max(right.depth);
                acc.len += right.len;
            }
            let m = acc.finish();
            g.admit_measure(m);
            g.charge(copied_items(Arc::strong_count(a), a.len(), b.len()));
            let out = (l + r)?;
            g.record(&out, m);
            Ok(out)
        }
        (Val::Obj(a), Val::Obj(b)) => {
            // Exact size of the merged object: keys of `b` replace those of `a`.
            let mut acc = Composite::unfinish(g.measure(&l), a.len());
            // Replacing the deepest value by a shallower one lowers the depth by an amount we
            // only learn by looking at all values; rare, so re-measure in that case.
            let mut depth_unknown = false;
            for (k, vb) in b.iter() {
                let (mk, mvb) = (g.measure(k), g.measure(vb));
                match a.get(k) {
                    Some(va) => {
                        let mva = g.measure(va);
                        depth_unknown |= mvb.depth < mva.depth && mva.depth >= acc.depth;
                        acc.bytes = acc
                            .bytes
                            .saturating_sub(mva.bytes)
                            .saturating_add(mvb.bytes);
                        acc.depth = acc.depth.max(mvb.depth);
                    }
                    None => acc.push_entry(mk, mvb),
                }
            }
            let m = acc.finish();
            g.charge(copied_items(Arc::strong_count(a), a.len(), b.len()));
            let out = (l + r)?;
            if depth_unknown {
                // `out` is a new allocation, so this measures it from its (cached) children.
                g.admit(&out);
            } else {
                g.admit_measure(m);
                g.record(&out, m);
            }
            Ok(out)
        }
        _ => l + r,
    }
}

/// Steps for concatenating containers: jaq extends the left one in place when it is its only
/// owner, else it copies it first.
fn copied_items(left_owners: usize, left_len: usize, right_len: usize) -> u64 {
    let copied = if left_owners == 1 {
        right_len
    } else {
        left_len + right_len
    };
    copied as u64 / ITEMS_PER_STEP
}

fn sub<'a>(g: &'a Guard<'a>, l: Val, r: Val) -> ValR<Val> {
    if let (Val::Arr(a), Val::Arr(b)) = (&l, &r) {
        g.charge((a.len() + b.len()) as u64 / ITEMS_PER_STEP);
    }
    check_int((l - r)?)
}

fn mul<'a>(g: &'a Guard<'a>, l: Val, r: Val) -> ValR<Val> {
    match (&l, &r) {
        (Val::Num(_), Val::Num(_)) => {
            // Check before multiplying: the product of two huge integers is itself slow.
            if int_digits(&l).saturating_add(int_digits(&r)) > 2 * INT_DIGITS_MAX {
                return fail(format_args!(
                    "integer result has more than {INT_DIGITS_MAX} digits"
                ));
            }
            check_int((l * r)?)
        }
        (Val::TStr(s) | Val::BStr(s), Val::Num(n)) | (Val::Num(n), Val::TStr(s) | Val::BStr(s)) => {
            // String repetition: check the result size before jaq allocates it.
            let times = match n {
                Num::Int(i) => (*i).max(0) as usize,
                Num::BigInt(_) => usize::MAX,
                _ => 0,
            };
            let len = s.len().saturating_mul(times);
            g.admit_measure(Measure {
                bytes: len.saturating_add(2),
                depth: 0,
            });
            g.charge(len as u64 / BYTES_PER_STEP);
            l * r
        }
        (Val::Obj(_), Val::Obj(_)) => {
            // A deep merge is at most as large as both operands together; measure the result.
            let out = (l * r)?;
            g.admit(&out);
            Ok(out)
        }
        _ => l * r,
    }
}

fn div<'a>(g: &'a Guard<'a>, l: Val, r: Val) -> ValR<Val> {
    if let (Val::TStr(s) | Val::BStr(s), Val::TStr(_) | Val::BStr(_)) = (&l, &r) {
        g.charge(s.len() as u64 / BYTES_PER_STEP);
        let out = (l / r)?;
        g.admit(&out);
        return Ok(out);
    }
    l / r
}

fn rem<'a>(_g: &'a Guard<'a>, l: Val, r: Val) -> ValR<Val> {
    l % r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{Limits, stack_position};

    fn parse(json: &str) -> Val {
        jaq_json::read::parse_single(json.as_bytes()).expect("valid JSON")
    }

    fn with_guard(f: impl FnOnce(&Guard<'_>)) {
        let filter = crate::compile::compile(".", &[]).expect("compiles");
        let limits = Limits {
            steps_max: 1_000_000,
            bytes_max: 1 << 20,
            depth_max: 64,
            stack_bytes_max: 1 << 20,
        };
        f(&Guard::new(&filter.lut, limits, stack_position()));
    }

    #[test]
    fn measures_follow_compact_json() {
        with_guard(|g| {
            for (json, depth) in [
                ("[]", 1),
                ("[null]", 1),
                ("[\"ab\",[null,true]]", 2),
                ("{\"a\":{\"bc\":[]}}", 3),
                ("{}", 1),
                ("\"x\"", 0),
            ] {
                let m = g.measure(&parse(json));
                assert_eq!((m.bytes, m.depth), (json.len(), depth), "{json}");
            }
            // Machine integers count as 8 bytes whatever their digits; decimals as their text.
            assert_eq!(g.measure(&parse("[1,2.5]")).bytes, 2 + 8 + 1 + 3);
        });
    }

    #[test]
    fn incremental_measures_of_sums_equal_fresh_measures() {
        // `P` stands for a long string, so that the sums are large enough to be cached and
        // the measure recorded by `add` is the one a later check reads.
        let cases = [
            ("[\"P\"]", "[]", "[\"P\"]"),
            ("[]", "[[\"P\"]]", "[[\"P\"]]"),
            ("[null,\"P\"]", "[[true],{}]", "[null,\"P\",[true],{}]"),
            ("{}", "{\"a\":\"P\"}", "{\"a\":\"P\"}"),
            (
                "{\"a\":[\"P\",null],\"b\":\"P\"}",
                "{\"a\":false,\"c\":\"x\"}",
                "{\"a\":false,\"b\":\"P\",\"c\":\"x\"}",
            ),
            (
                "{\"a\":{\"b\":{\"c\":\"P\"}}}",
                "{\"a\":\"P\"}",
                "{\"a\":\"P\"}",
            ),
        ];
        let long = "x".repeat(300);
        for (l, r, sum) in cases {
            let [l, r, sum] = [l, r, sum].map(|json| parse(&json.replace('P', &long)));
            with_guard(|g| {
                let out = add(g, l, r).expect("adds");
                assert_eq!(g.measure(&out), g.measure(&sum), "{sum}");
            });
        }
    }

    #[test]
    fn prescan_rejects_deep_nesting_and_long_numbers() {
        assert!(prescan_json(b"[[[1]]]", 3).is_ok());
        assert!(prescan_json(b"[[[1]]]", 2).is_err());
        assert!(prescan_json(b"{\"a\":{\"b\":1}}", 2).is_ok());
        assert!(prescan_json("\"[[[[\"".as_bytes(), 1).is_ok());
        assert!(prescan_json(b"\"\\\"[[[\"", 1).is_ok());
        let long = "9".repeat(INT_DIGITS_MAX + 1);
        assert!(prescan_json(long.as_bytes(), 8).is_err());
        assert!(prescan_json(format!("\"{long}\"").as_bytes(), 8).is_ok());
        assert!(prescan_json(format!("[{}, {}]", &long[1..], &long[1..]).as_bytes(), 8).is_ok());
    }
}
