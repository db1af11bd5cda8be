//! The override report: every override over a period — in effect, waiting for its second
//! approver, or refused — with who asked, why, what it replaced, who confirmed, and what it cost
//! where the flow declares a cost; and the same counted by flow, decision, person and reason.
//!
//! It is read from the approval tasks themselves (they are the record of every answer), so it
//! cannot disagree with the inbox. The scan is bounded; a report that stopped at the bound
//! says so.

use std::collections::{BTreeMap, HashMap};

use baton_core::InstanceId;
use baton_store::{Collection, DocQuery, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{APPROVAL_KIND, ApprovalError, ApprovalStatus, ApprovalTask, Approvals, Verdict};

/// Tasks read per page of the scan.
const PAGE: usize = 500;

/// One override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideEntry {
    pub task: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// `namespace/name:version` of the instance's flow, when known.
    pub flow: String,
    pub decision: String,
    pub title: String,
    /// `effective`, `pending` (waits for its second approver), `refused`, or `lapsed` (it was
    /// waiting when the task closed without it: window end, instance end).
    pub status: String,
    pub by: String,
    pub reason: String,
    pub asked_at: String,
    pub asked_at_ms: u64,
    /// When it took effect (effective only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal_reason: Option<String>,
    pub original: Value,
    pub replacement: Value,
    /// What the flow says the override cost (`cost:` of the approval, read from the ended
    /// instance's output); absent when the flow declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Value>,
    /// The time the period is measured on: effect, refusal, or the request while pending.
    pub at_ms: u64,
}

/// A count of overrides sharing one value (a flow, a decision, a person, a reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideGroup {
    pub key: String,
    pub total: usize,
    pub effective: usize,
    pub pending: usize,
    pub refused: usize,
    #[serde(default)]
    pub lapsed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideReport {
    pub since: String,
    pub until: String,
    pub total: usize,
    pub effective: usize,
    pub pending: usize,
    pub refused: usize,
    /// Asked for, never confirmed nor refused, and no longer able to take effect.
    #[serde(default)]
    pub lapsed: usize,
    pub by_flow: Vec<OverrideGroup>,
    pub by_decision: Vec<OverrideGroup>,
    pub by_person: Vec<OverrideGroup>,
    pub by_reason: Vec<OverrideGroup>,
    /// The overrides, newest first.
    pub overrides: Vec<OverrideEntry>,
    /// Approval tasks read.
    pub scanned: usize,
    /// True when the scan stopped at its bound: older overrides may be missing.
    pub truncated: bool,
}

fn group(entries: &[OverrideEntry], key: impl Fn(&OverrideEntry) -> String) -> Vec<OverrideGroup> {
    let mut map: BTreeMap<String, OverrideGroup> = BTreeMap::new();
    for e in entries {
        let k = key(e);
        let g = map.entry(k.clone()).or_insert(OverrideGroup {
            key: k,
            total: 0,
            effective: 0,
            pending: 0,
            refused: 0,
            lapsed: 0,
        });
        g.total += 1;
        match e.status.as_str() {
            "effective" => g.effective += 1,
            "pending" => g.pending += 1,
            "lapsed" => g.lapsed += 1,
            _ => g.refused += 1,
        }
    }
    let mut v: Vec<OverrideGroup> = map.into_values().collect();
    v.sort_by(|a, b| b.total.cmp(&a.total).then(a.key.cmp(&b.key)));
    v
}

fn iso(ms: u64) -> String {
    baton_core::time::iso8601_utc(ms)
}

impl<S: Store> Approvals<S> {
    /// The override report for `[since_ms, until_ms)`, reading at most `max_tasks` tasks.
    pub async fn override_report(
        &self,
        since_ms: u64,
        until_ms: u64,
        max_tasks: usize,
    ) -> Result<OverrideReport, ApprovalError> {
        let mut entries = Vec::new();
        let mut scanned = 0;
        let mut truncated = false;
        // Instance summaries (flow and output) are read once per instance.
        let mut instances: HashMap<String, Option<baton_store::InstanceRecord>> = HashMap::new();
        // Read as JSON and decoded one by one: one unreadable task must not hide every other
        // override.
        let tasks: Collection<Value> = Collection::new(APPROVAL_KIND);
        let query = DocQuery {
            status: None,
            newest_first: true,
            after: None,
            limit: PAGE,
        };
        let mut pages = tasks.pages(&*self.store, query);
        'scan: while let Some(page) = pages.next_page().await? {
            for d in page {
                if scanned == max_tasks {
                    truncated = true;
                    break 'scan;
                }
                scanned += 1;
                let Ok(t) = serde_json::from_value::<ApprovalTask>(d.value) else {
                    continue;
                };
                if t.verdict != Some(Verdict::Overridden)
                    && t.pending_override.is_none()
                    && t.refused_overrides.is_empty()
                {
                    continue;
                }
                let rec = match &t.instance {
                    Some(i) => {
                        if !instances.contains_key(i) {
                            let r = self.store.instance(&InstanceId(i.clone())).await?;
                            instances.insert(i.clone(), r);
                        }
                        instances.get(i).cloned().flatten()
                    }
                    None => None,
                };
                for e in entries_of(&t, rec.as_ref()) {
                    if e.at_ms >= since_ms && e.at_ms < until_ms {
                        entries.push(e);
                    }
                }
            }
        }
        entries.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(a.task.cmp(&b.task)));
        let count = |s: &str| entries.iter().filter(|e| e.status == s).count();
        Ok(OverrideReport {
            since: iso(since_ms),
            until: iso(until_ms),
            total: entries.len(),
            effective: count("effective"),
            pending: count("pending"),
            refused: count("refused"),
            lapsed: count("lapsed"),
            by_flow: group(&entries, |e| e.flow.clone()),
            by_decision: group(&entries, |e| format!("{} / {}", e.flow, e.decision)),
            by_person: group(&entries, |e| e.by.clone()),
            by_reason: group(&entries, |e| e.reason.clone()),
            overrides: entries,
            scanned,
            truncated,
        })
    }
}

/// The overrides one task holds: the one in effect or pending, and the refused ones.
fn entries_of(t: &ApprovalTask, rec: Option<&baton_store::InstanceRecord>) -> Vec<OverrideEntry> {
    let flow = rec.map_or_else(
        || "-".to_string(),
        |r| format!("{}/{}:{}", r.flow.namespace, r.flow.name, r.flow.version),
    );
    let cost = t.cost.as_deref().map(|ptr| match rec {
        Some(r) if r.status.is_terminal() => r
            .output
            .as_ref()
            .and_then(|o| o.pointer(ptr))
            .cloned()
            .unwrap_or(Value::Null),
        _ => serde_json::json!({"pending": "read from the instance's output once it has ended"}),
    });
    let base = |status: &str, by: &str, reason: &str, asked: u64, replacement: &Value, at: u64| {
        OverrideEntry {
            task: t.id.clone(),
            instance: t.instance.clone(),
            flow: flow.clone(),
            decision: t.decision_name().to_string(),
            title: t.title.clone(),
            status: status.into(),
            by: by.into(),
            reason: reason.into(),
            asked_at: iso(asked),
            asked_at_ms: asked,
            effective_at: None,
            confirmed_by: None,
            refused_by: None,
            refusal_reason: None,
            original: t.data.clone(),
            replacement: replacement.clone(),
            cost: None,
            at_ms: at,
        }
    };
    let mut out = Vec::new();
    if t.verdict == Some(Verdict::Overridden) {
        let at = t.decided_at_ms.unwrap_or(0);
        let asked = t.override_proposed_at_ms.unwrap_or(at);
        let mut e = base(
            "effective",
            t.decided_by.as_deref().unwrap_or("?"),
            t.reason.as_deref().unwrap_or(""),
            asked,
            t.output.as_ref().unwrap_or(&Value::Null),
            at,
        );
        e.effective_at = Some(iso(at));
        e.confirmed_by = t.confirmed_by.clone();
        e.cost = cost.clone();
        out.push(e);
    }
    if let Some(p) = &t.pending_override {
        // Only an open task can still take it: one that closed without it (its window ended,
        // its instance ended) let it lapse, and nobody can confirm it any more.
        let status = if t.status == ApprovalStatus::Open {
            "pending"
        } else {
            "lapsed"
        };
        out.push(base(status, &p.by, &p.reason, p.at_ms, &p.output, p.at_ms));
    }
    for r in &t.refused_overrides {
        let mut e = base(
            "refused",
            &r.asked.by,
            &r.asked.reason,
            r.asked.at_ms,
            &r.asked.output,
            r.refused_at_ms,
        );
        e.refused_by = Some(r.refused_by.clone());
        e.refusal_reason = Some(r.refusal_reason.clone());
        out.push(e);
    }
    out
}
