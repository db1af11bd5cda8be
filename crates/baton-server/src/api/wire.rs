//! Schema documents of answers whose wire form is a feature's own serialisation. The handlers
//! return the feature's type as it serialises (nothing is converted, so nothing can drift in a
//! copy); these types only name its fields for the OpenAPI document, and
//! `tests/openapi_shapes.rs` checks real answers against the document, every field included.

#![allow(dead_code)] // read by utoipa's derive only

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::approvals::ApprovalStatusView;

/// An approval task: what a person is asked, who may answer, by when, and how it was answered.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApprovalTask)]
pub struct ApprovalTaskDoc {
    /// The call's idempotency key; the task's id.
    id: String,
    /// The instance that asked.
    instance: Option<String>,
    title: String,
    /// What the person decides about (e.g. a proposed decision output).
    data: Value,
    status: ApprovalStatusView,
    /// The current escalation level (0: the first assignees).
    level: u64,
    /// The current level's assignees: user names and `group:NAME`.
    assignees: Vec<String>,
    /// Every level, the first assignees then the escalation chain.
    levels: Vec<Vec<String>>,
    created_at_ms: u64,
    /// When the current level was asked (creation, or its escalation).
    offered_at_ms: u64,
    /// The current level's due time (never after the window's end).
    due_at_ms: u64,
    window_end_at_ms: u64,
    /// How the due time of a level is set: `{kind: fixed, after_ms}` or `{kind: adaptive,
    /// calendar, default_ms, min_ms, max_ms, samples, percentile}`.
    #[schema(value_type = Option<Object>)]
    due: Option<Value>,
    /// `approve`, `reject` or `fail`.
    on_window_end: String,
    escalations: Vec<EscalationDoc>,
    /// Set once answered: whether the answer lets the flow go ahead.
    approved: Option<bool>,
    /// `approved`, `rejected`, `overridden` or `defaulted`.
    verdict: Option<String>,
    decided_by: Option<String>,
    reason: Option<String>,
    decided_at_ms: Option<u64>,
    /// The replacement output of an override (`data` keeps what was proposed).
    output: Option<Value>,
    /// Whether the answer came after the due time of the level that answered.
    answered_late: Option<bool>,
    /// The decision's name for the override policy and reports.
    decision: Option<String>,
    /// The flow's own override rule.
    #[serde(rename = "override")]
    override_rule: Option<OverrideRuleDoc>,
    /// JSON Pointer into the instance's output where the flow says what an override cost.
    cost: Option<String>,
    /// An override that waits for its second approver; the task stays open meanwhile.
    pending_override: Option<PendingOverrideDoc>,
    /// Overrides the second approver refused, oldest first.
    refused_overrides: Option<Vec<RefusedOverrideDoc>>,
    /// The second approver who confirmed the override in effect.
    confirmed_by: Option<String>,
    confirmed_at_ms: Option<u64>,
    /// When the override in effect was asked for.
    override_proposed_at_ms: Option<u64>,
}

/// One step up the escalation chain.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Escalation)]
pub struct EscalationDoc {
    from_level: u64,
    to_level: u64,
    from: Vec<String>,
    to: Vec<String>,
    /// When Baton escalated.
    at_ms: u64,
    /// The due time the earlier level missed.
    missed_due_at_ms: u64,
    /// The new level's due time.
    due_at_ms: u64,
}

/// Who may override a decision and who must confirm: user names, `group:NAME`, `role:ROLE`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OverrideRule)]
pub struct OverrideRuleDoc {
    /// Overrides are refused outright.
    forbidden: Option<bool>,
    allow: Option<Vec<String>>,
    second_approver: Option<Vec<String>>,
}

/// An override asked for and not yet confirmed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PendingOverride)]
pub struct PendingOverrideDoc {
    output: Value,
    reason: String,
    by: String,
    at_ms: u64,
    /// Who may confirm it (every list must admit the second approver).
    second_approver: Vec<Vec<String>>,
}

/// An override its second approver refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RefusedOverride)]
pub struct RefusedOverrideDoc {
    output: Value,
    reason: String,
    by: String,
    at_ms: u64,
    second_approver: Vec<Vec<String>>,
    refused_by: String,
    refused_at_ms: u64,
    refusal_reason: String,
}

/// A candidate flow version registered as the shadow of a live decision.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ShadowRegistration)]
pub struct ShadowRegistrationDoc {
    name: String,
    candidate: FlowRefDoc,
    /// What the candidate is compared with: `{kind: flow, namespace, name, version}` (every
    /// start of that version gets a shadow) or `{kind: legacy, system}` (decisions posted).
    live: LiveSideDoc,
    /// Leaf paths to compare (`.action`, `.route.driver`); empty: every field.
    fields: Vec<String>,
    created_by: String,
    created_at_ms: u64,
    /// Set once the shadow is stopped.
    retired_at_ms: Option<u64>,
    retired_by: Option<String>,
}

/// One version of a flow, with the hash of its source.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FlowVersionRef)]
pub struct FlowRefDoc {
    namespace: String,
    name: String,
    version: String,
    hash: String,
}

/// The live side of a shadow.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LiveSide)]
pub struct LiveSideDoc {
    /// `flow` or `legacy`.
    kind: String,
    /// For `flow`.
    namespace: Option<String>,
    name: Option<String>,
    version: Option<String>,
    /// For `legacy`: the system whose decisions are posted.
    system: Option<String>,
}

/// The override report of a period: every override with who, why, what it replaced and its
/// cost, counted by flow, decision, person and reason.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OverrideReport)]
pub struct OverrideReportDoc {
    /// The period, RFC 3339.
    since: String,
    until: String,
    total: u64,
    effective: u64,
    pending: u64,
    refused: u64,
    /// Asked for, never confirmed nor refused, and no longer able to take effect.
    lapsed: u64,
    by_flow: Vec<OverrideGroupDoc>,
    by_decision: Vec<OverrideGroupDoc>,
    by_person: Vec<OverrideGroupDoc>,
    by_reason: Vec<OverrideGroupDoc>,
    /// The overrides, newest first.
    overrides: Vec<OverrideEntryDoc>,
    /// Approval tasks read.
    scanned: u64,
    /// True when the scan stopped at its bound: older overrides may be missing.
    truncated: bool,
}

/// A count of overrides sharing one value (a flow, a decision, a person, a reason).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OverrideGroup)]
pub struct OverrideGroupDoc {
    key: String,
    total: u64,
    effective: u64,
    pending: u64,
    refused: u64,
    lapsed: u64,
}

/// One override in the report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OverrideEntry)]
pub struct OverrideEntryDoc {
    task: String,
    instance: Option<String>,
    /// `namespace/name:version` of the instance's flow, when known.
    flow: String,
    decision: String,
    title: String,
    /// `effective`, `pending`, `refused` or `lapsed`.
    status: String,
    by: String,
    reason: String,
    asked_at: String,
    asked_at_ms: u64,
    /// When it took effect (effective only).
    effective_at: Option<String>,
    confirmed_by: Option<String>,
    refused_by: Option<String>,
    refusal_reason: Option<String>,
    original: Value,
    replacement: Value,
    /// What the flow says the override cost; absent when the flow declares none.
    cost: Option<Value>,
    /// The time the period is measured on: effect, refusal, or the request while pending.
    at_ms: u64,
}

/// A shadow's report over a period.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ShadowReport)]
pub struct ShadowReportDoc {
    name: String,
    candidate: Option<FlowRefDoc>,
    live: Option<LiveSideDoc>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    /// Cases in the period.
    cases: u64,
    /// Cases whose two sides have ended and been compared.
    compared: u64,
    agreed: u64,
    /// `agreed / compared`; absent when nothing was compared.
    agreement_rate: Option<f64>,
    /// Differences per field.
    fields: std::collections::BTreeMap<String, u64>,
    /// Effects the shadows recorded but did not perform.
    effects_not_performed: u64,
    differences: Vec<CaseDiffDoc>,
}

/// A case where the shadow disagreed, field by field, with why each side decided as it did.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CaseDiff)]
pub struct CaseDiffDoc {
    case: String,
    at_ms: u64,
    /// What both sides decided on.
    input: Value,
    live_instance: Option<String>,
    shadow_instance: Option<String>,
    differences: Vec<FieldDiffDoc>,
    /// Rules that fired in the shadow's decisions (`shadow`) and in the live flow's (`live`).
    why: Value,
}

/// One field on which the two sides differ.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FieldDiff)]
pub struct FieldDiffDoc {
    field: String,
    live: Value,
    shadow: Value,
}

/// One case of a shadow: both sides as they ended and, once both have, their comparison.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ShadowCase)]
pub struct ShadowCaseDoc {
    registration: String,
    /// The live instance's id, or the legacy system's case id.
    case: String,
    /// What both sides decide on.
    input: Value,
    /// Who posted a legacy decision.
    posted_by: Option<String>,
    live: CaseSideDoc,
    shadow: CaseSideDoc,
    /// Set once both sides have ended.
    comparison: Option<ComparisonDoc>,
    /// `running` or `compared`.
    status: String,
    at_ms: u64,
}

/// One side of a case.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CaseSide)]
pub struct CaseSideDoc {
    /// The side's instance (absent for a legacy decision).
    instance: Option<String>,
    ended: bool,
    /// How it ended: `completed`, `faulted`, `cancelled` (once ended).
    status: Option<String>,
    output: Option<Value>,
    /// The problem it ended with, if it faulted.
    error: Option<Value>,
    /// Who decided, for a legacy decision.
    decided_by: Option<String>,
    /// Rules that fired in the side's decisions.
    rules: Option<Vec<String>>,
    /// Effects the shadow recorded and did not perform.
    not_performed: Option<u64>,
}

/// The comparison of a case's two sides.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Comparison)]
pub struct ComparisonDoc {
    agreed: bool,
    differences: Vec<FieldDiffDoc>,
    at_ms: u64,
}

/// The record of one decision: what it decided on (inputs, with the reads they came from and
/// their ages), what it produced, the rules that fired, and any review or override.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DecisionRecord)]
pub struct DecisionRecordDoc {
    /// `<instance>:<effect key>`: unique and stable.
    id: String,
    instance: String,
    /// `rules` (a DMN decision) or `approval` (a person's answer).
    kind: String,
    /// The task's reference in the flow.
    task: String,
    key: String,
    at: String,
    at_ms: u64,
    flow: FlowRefDoc,
    /// The DMN decision's version: `{file, hash, name, decision}` (rules only).
    decision: Option<Value>,
    /// `ok`, `failed`, `unknown` or `stale`.
    outcome: String,
    inputs: Vec<DecisionInputDoc>,
    /// Why the inputs are not known (the journal could not be replayed).
    inputs_unavailable: Option<String>,
    /// Every read made before the decision, oldest first.
    reads: Vec<ReadDoc>,
    rules: Option<Vec<FiredRuleDoc>>,
    /// What the decision produced.
    output: Value,
    /// The approval's answer: task, title, verdict, by, reason, when, late.
    approval: Option<Value>,
    /// An override: original, replacement, who asked and why, who confirmed, when.
    #[serde(rename = "override")]
    override_: Option<Value>,
    /// Overrides asked for and refused by the second approver.
    refused_overrides: Option<Vec<Value>>,
    /// What the override cost, where the flow declares it.
    cost: Option<Value>,
    /// The approval that reviewed this decision's output (its key).
    reviewed_by: Option<String>,
    /// How that approval went: the verdict, who, why, when, and any override.
    review: Option<Value>,
    /// The decision whose output this approval reviewed (its key).
    reviews: Option<String>,
}

/// One input of a decision, with the reads whose answer holds its value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DecisionInput)]
pub struct DecisionInputDoc {
    name: String,
    value: Value,
    sources: Vec<InputSourceDoc>,
}

/// Where an input's value was found.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = InputSource)]
pub struct InputSourceDoc {
    /// The read's effect key.
    read: String,
    kind: String,
    source: String,
    /// JSON Pointer into the read's answer where the same value is.
    path: String,
    observed_at: String,
    age_ms: u64,
}

/// A read an instance made before a decision, with how old its data was then.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Read)]
pub struct ReadDoc {
    /// The read's effect key (`started` for the instance's input).
    key: String,
    /// `fact`, `provider`, `http`, `event` or `input`.
    kind: String,
    source: String,
    observed_at: String,
    observed_at_ms: u64,
    /// How old the data was when the decision was made.
    age_ms: u64,
    status: String,
    fact: Option<String>,
}

/// A DMN rule that fired.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FiredRule)]
pub struct FiredRuleDoc {
    decision: String,
    table: String,
    hit_policy: String,
    /// 1-based, as DMN tools number rules.
    index: u64,
    id: String,
    annotation: Option<String>,
}

/// Who did what, and when.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AuditEntry)]
pub struct AuditEntryDoc {
    actor: String,
    action: String,
    target: String,
    detail: Value,
    at_ms: u64,
}

/// An event that could not be processed, kept with its reason.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QuarantinedEvent)]
pub struct QuarantinedDoc {
    id: String,
    /// `held` or `replayed`.
    status: String,
    received_at_ms: u64,
    reason: String,
    /// The body as received: its JSON, or the text when it was not JSON.
    raw: Value,
    /// Whether `raw` was cut at the event size limit.
    truncated: bool,
    /// Whether the event is in the event log.
    stored: bool,
    replayed_at_ms: Option<u64>,
    /// What the replay did.
    replay: Option<Value>,
    /// For a conflict (same `source` and `id`, other data): the event received first.
    first: Option<Value>,
}
