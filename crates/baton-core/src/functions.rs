//! The one table of the functions Baton ships (`call: NAME`). Validation reads it for the names a
//! flow may call, the core for which calls only wait, shadows and replays for which calls change
//! nothing outside Baton, the CLI for `baton validate`; the runtime and the CLI register an
//! implementation for each. A function added here and not registered is refused at run time as
//! unknown, never called by accident.

/// The names of the built-in functions, for the code that registers or recognises one.
pub mod names {
    pub const NOOP: &str = "noop";
    pub const DECIDE: &str = "decide";
    pub const FACT: &str = "fact";
    pub const FACT_PUT: &str = "fact_put";
    pub const APPROVAL: &str = "approval";
    pub const GUARD: &str = "guard";
    pub const CLAIM: &str = "claim";
    pub const RELEASE: &str = "release";
    pub const PROVIDER: &str = "provider";
}

/// One built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinFunction {
    pub name: &'static str,
    /// What it does, in a line (for `baton validate` and the docs).
    pub summary: &'static str,
    /// It waits rather than works (for a person, another instance's claim, a fresh fact): an
    /// instance whose outstanding effects are all waits is `waiting`, so inboxes and "stuck"
    /// filters can tell a flow held on purpose from one held by a slow provider.
    pub waits: bool,
    /// It changes nothing outside Baton, so a shadow or a replay may perform it.
    pub reads_only: bool,
    /// It is pure computation: a replay evaluates it again rather than taking its recorded
    /// answer (the new version's decision table is the point of a replay).
    pub pure: bool,
    /// It exists only when a provider catalogue is loaded.
    pub needs_catalogue: bool,
}

const fn f(name: &'static str, summary: &'static str) -> BuiltinFunction {
    BuiltinFunction {
        name,
        summary,
        waits: false,
        reads_only: false,
        pure: false,
        needs_catalogue: false,
    }
}

const fn waits(mut b: BuiltinFunction) -> BuiltinFunction {
    b.waits = true;
    b
}

const fn reads(mut b: BuiltinFunction) -> BuiltinFunction {
    b.reads_only = true;
    b
}

const fn pure(mut b: BuiltinFunction) -> BuiltinFunction {
    b.reads_only = true;
    b.pure = true;
    b
}

/// Every function Baton ships.
pub const BUILTIN_FUNCTIONS: &[BuiltinFunction] = &[
    pure(f(
        names::NOOP,
        "returns its arguments (the trivial durable step)",
    )),
    pure(f(names::DECIDE, "evaluates a DMN decision")),
    waits(reads(f(
        names::FACT,
        "reads a fact with a freshness bound (refreshing or holding when stale)",
    ))),
    f(names::FACT_PUT, "records an observation of a fact"),
    waits(f(names::APPROVAL, "asks people and waits for the answer")),
    waits(f(
        names::GUARD,
        "caps re-decisions per entity in a window (flap guard)",
    )),
    waits(f(
        names::CLAIM,
        "takes an exclusive, leased hold on an entity",
    )),
    f(names::RELEASE, "gives a claim back"),
    BuiltinFunction {
        needs_catalogue: true,
        ..f(names::PROVIDER, "calls a declared provider operation")
    },
];

/// The built-in function called `name`.
pub fn builtin_function(name: &str) -> Option<&'static BuiltinFunction> {
    BUILTIN_FUNCTIONS.iter().find(|b| b.name == name)
}

/// The names a flow may call: every built-in, `provider` only with a catalogue.
pub fn builtin_function_names(with_catalogue: bool) -> Vec<String> {
    BUILTIN_FUNCTIONS
        .iter()
        .filter(|b| with_catalogue || !b.needs_catalogue)
        .map(|b| b.name.to_string())
        .collect()
}

/// Whether a call of `name` only waits (see [`BuiltinFunction::waits`]).
pub fn is_waiting_function(name: &str) -> bool {
    builtin_function(name).is_some_and(|b| b.waits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_pure_implies_read_only() {
        let mut names: Vec<_> = BUILTIN_FUNCTIONS.iter().map(|b| b.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BUILTIN_FUNCTIONS.len());
        assert!(BUILTIN_FUNCTIONS.iter().all(|b| !b.pure || b.reads_only));
        assert!(!builtin_function_names(false).contains(&"provider".to_string()));
        assert!(builtin_function_names(true).contains(&"provider".to_string()));
        let waiting: Vec<_> = BUILTIN_FUNCTIONS
            .iter()
            .filter(|b| b.waits)
            .map(|b| b.name)
            .collect();
        assert_eq!(waiting, ["fact", "approval", "guard", "claim"]);
    }
}
