//! The journal: the append-only record of an instance from which its state is derived.
//!
//! Architecture invariant: every entry the core produces is a pure function of the entries before
//! it and the program; replaying a journal through [`crate::Instance::recover`] gives the same
//! state and the same outstanding effects.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::Problem;

/// Identifies an instance. UUID v7 text in practice; any unique string works.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one effect of an instance: the task's reference plus loop iterations and attempt
/// numbers, so it is stable across replays and unique within the instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EffectKey(pub String);

impl EffectKey {
    /// Whether this is the key of an event consumed by a `listen` task.
    pub fn is_listen(&self) -> bool {
        self.0.contains(crate::effect::LISTEN_KEY_MARK)
    }
}

impl std::fmt::Display for EffectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How an effect ended. `Unknown` and `Stale` exist from the start so that the honest-data
/// behaviour of the brief (§5) fits without changing the journal format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// The effect happened and produced this value.
    Ok { value: Value },
    /// The effect definitely did not happen (or was refused).
    Failed { problem: Problem },
    /// The request was sent but the answer was lost (timeout, connection drop): it may or may not
    /// have happened. The runtime reconciles before delivering `Unknown` to the core.
    Unknown { reason: String },
    /// The answer is older than the freshness bound accepted.
    Stale {
        value: Value,
        observed_at_ms: u64,
        reason: String,
    },
}

impl Outcome {
    pub fn ok(value: Value) -> Outcome {
        Outcome::Ok { value }
    }
    pub fn failed(problem: Problem) -> Outcome {
        Outcome::Failed { problem }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Failed { .. } => "failed",
            Outcome::Unknown { .. } => "unknown",
            Outcome::Stale { .. } => "stale",
        }
    }
}

/// Identifies the flow version an instance runs: name, version and the content hash of the
/// definition, so a resumed instance runs exactly the definition it started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRef {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub hash: String,
}

/// One journal record. `at_ms` is the driver's clock when the entry was made: the core's notion of
/// "now" is the `at_ms` of the last entry it processed, which keeps replay deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JournalEntry {
    Started {
        at_ms: u64,
        flow: FlowRef,
        input: Value,
    },
    /// An effect's result. Appended once per key; duplicates are refused by the core.
    EffectCompleted {
        at_ms: u64,
        key: EffectKey,
        #[serde(flatten)]
        outcome: Outcome,
        /// Fact versions the result depended on (filled by the facts feature; empty otherwise).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        facts: Vec<String>,
    },
    /// What happened on the way to an effect's outcome (a retry, a limiter wait, a breaker
    /// transition, a reconciliation, a poll of an accepted job). Informational: replay skips
    /// notes, so they never change the state derived from the journal.
    EffectNote {
        at_ms: u64,
        key: EffectKey,
        note: Value,
    },
    /// What a task wanted recorded about how it ended (a fan-out's status and missing branches).
    /// Informational, like notes: replay skips it.
    TaskNote {
        at_ms: u64,
        /// The task's key (its reference plus iterations).
        task: String,
        note: Value,
    },
    /// A person or system asked the instance to stop.
    CancelRequested {
        at_ms: u64,
        reason: String,
        /// Who asked (absent for entries written before identities were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Someone paused the instance: effects already in flight finish and their results are
    /// journaled, but the flow does not go on until it is resumed.
    Suspended {
        at_ms: u64,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Resumed {
        at_ms: u64,
        by: String,
    },
    Completed {
        at_ms: u64,
        output: Value,
    },
    Faulted {
        at_ms: u64,
        problem: Problem,
    },
    Cancelled {
        at_ms: u64,
        reason: String,
    },
}

impl JournalEntry {
    pub fn at_ms(&self) -> u64 {
        match self {
            JournalEntry::Started { at_ms, .. }
            | JournalEntry::EffectCompleted { at_ms, .. }
            | JournalEntry::EffectNote { at_ms, .. }
            | JournalEntry::TaskNote { at_ms, .. }
            | JournalEntry::CancelRequested { at_ms, .. }
            | JournalEntry::Suspended { at_ms, .. }
            | JournalEntry::Resumed { at_ms, .. }
            | JournalEntry::Completed { at_ms, .. }
            | JournalEntry::Faulted { at_ms, .. }
            | JournalEntry::Cancelled { at_ms, .. } => *at_ms,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            JournalEntry::Started { .. } => "started",
            JournalEntry::EffectCompleted { .. } => "effect_completed",
            JournalEntry::EffectNote { .. } => "effect_note",
            JournalEntry::TaskNote { .. } => "task_note",
            JournalEntry::CancelRequested { .. } => "cancel_requested",
            JournalEntry::Suspended { .. } => "suspended",
            JournalEntry::Resumed { .. } => "resumed",
            JournalEntry::Completed { .. } => "completed",
            JournalEntry::Faulted { .. } => "faulted",
            JournalEntry::Cancelled { .. } => "cancelled",
        }
    }

    /// Whether this entry ends the instance.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JournalEntry::Completed { .. }
                | JournalEntry::Faulted { .. }
                | JournalEntry::Cancelled { .. }
        )
    }
}

/// The status of an instance, derived from its journal and outstanding effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Pending,
    Running,
    /// Only timers or event listeners are outstanding.
    Waiting,
    Suspended,
    Cancelled,
    Faulted,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Waiting => "waiting",
            Status::Suspended => "suspended",
            Status::Cancelled => "cancelled",
            Status::Faulted => "faulted",
            Status::Completed => "completed",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "running" => Status::Running,
            "waiting" => Status::Waiting,
            "suspended" => Status::Suspended,
            "cancelled" => Status::Cancelled,
            "faulted" => Status::Faulted,
            "completed" => Status::Completed,
            _ => return None,
        })
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Cancelled | Status::Faulted | Status::Completed
        )
    }
}
