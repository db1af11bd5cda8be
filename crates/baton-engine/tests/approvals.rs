//! Approvals (`call: approval`) end to end: a flow asks, people answer through the inbox
//! (`Runtime::approvals`), time moves on a manual clock. Covers who may answer, what an answer
//! records, escalation when a level is late, late answers, the window's end (default answer or
//! timeout), adaptive due times in working hours, a restart with the task open, and two answers
//! at once.
//!
//! Nothing here sleeps: tests wait for a task to reach a state through the inbox's change
//! notifications, and for instances through `Runtime::wait`.

use baton_engine::Features;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{ErrorKind, InstanceId, Status};
use baton_engine::approvals::{
    Answer, ApprovalError, ApprovalQuery, ApprovalStatus, ApprovalTask, Approvals, Verdict,
};
use baton_engine::{Actor, ManualClock, Role, RunResult, Runtime, RuntimeOptions};
use baton_store::{MemoryStore, SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

/// A local time in Chicago as epoch milliseconds.
fn chicago(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> u64 {
    let tz = jiff::tz::TimeZone::get("America/Chicago").expect("zone");
    let z = jiff::civil::date(y, mo, d)
        .at(h, mi, 0, 0)
        .to_zoned(tz)
        .expect("valid local time");
    z.timestamp().as_millisecond() as u64
}

/// Monday 2025-03-10 09:00 in Chicago: inside working hours.
fn monday_9() -> u64 {
    chicago(2025, 3, 10, 9, 0)
}

/// Fails the test instead of hanging it when something never happens.
async fn guard<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn person(name: &str, roles: &[Role], groups: &[&str]) -> Actor {
    Actor {
        name: name.into(),
        roles: roles.to_vec(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn dana() -> Actor {
    person("dana", &[Role::Approver], &["dispatchers"])
}

fn eli() -> Actor {
    person("eli", &[Role::Approver], &["dispatchers"])
}

fn fleet_manager() -> Actor {
    person("fleet-manager", &[Role::Approver], &["managers"])
}

/// The base arguments: a reroute proposal for the dispatchers, four hours to answer.
fn ask(extra: Value) -> Value {
    let mut with = json!({
        "title": "Reroute order ord-17",
        "assignees": ["group:dispatchers"],
        "data": {"action": "reroute", "driver": "drv-3"},
        "window": "PT4H",
    });
    for (k, v) in extra.as_object().expect("object").clone() {
        with[k] = v;
    }
    with
}

/// A flow of one approval call; the instance id is passed so the inbox can show it.
fn flow(name: &str, with: Value) -> String {
    let mut with = with;
    with["instance"] = json!("${ $workflow.id }");
    format!(
        "document: {{ dsl: '1.0.3', namespace: test, name: {name}, version: '1.0.0' }}\n\
         do:\n  - ask:\n      call: approval\n      with: {with}\n"
    )
}

fn memory_runtime(clock: &Arc<ManualClock>) -> Runtime<MemoryStore> {
    baton_engine::runtime_with_clock(
        Arc::new(MemoryStore::new()),
        RuntimeOptions::default(),
        clock.clone(),
    )
}

fn sqlite(db: &Path) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(
            db,
            SqliteOptions {
                fsync_every_commit: false,
            },
        )
        .expect("the store opens"),
    )
}

async fn start<S: Store>(rt: &Runtime<S>, name: &str, with: Value) -> InstanceId {
    let program = rt
        .register_flow(&flow(name, with))
        .await
        .expect("valid flow");
    rt.start(program, json!({})).await.expect("started")
}

/// Waits until the task of `instance` exists and satisfies `pred`.
async fn task_where<S: Store>(
    approvals: &Approvals<S>,
    instance: &InstanceId,
    what: &str,
    pred: impl Fn(&ApprovalTask) -> bool,
) -> ApprovalTask {
    guard(what, async {
        let mut changes = approvals.changes();
        loop {
            let q = ApprovalQuery {
                instance: Some(instance.0.clone()),
                ..ApprovalQuery::default()
            };
            let found = approvals.list(&q).await.expect("list");
            assert!(found.len() <= 1, "one call, one task: {found:?}");
            if let Some(t) = found.into_iter().next()
                && pred(&t)
            {
                return t;
            }
            changes.changed().await.expect("the notifier lives");
        }
    })
    .await
}

async fn open_task<S: Store>(rt: &Runtime<S>, instance: &InstanceId) -> ApprovalTask {
    task_where(&rt.approvals(), instance, "the task to open", |t| {
        t.status == ApprovalStatus::Open
    })
    .await
}

async fn finish<S: Store>(rt: &Runtime<S>, id: &InstanceId) -> RunResult {
    guard("the instance to end", rt.wait(id))
        .await
        .expect("wait")
}

fn output(r: &RunResult) -> &Value {
    assert_eq!(r.status, Status::Completed, "{:?}", r.error);
    r.output.as_ref().expect("an output")
}

#[tokio::test]
async fn approving_completes_the_instance_with_the_answer() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let id = start(&rt, "approve", ask(json!({"due": {"fixed": "1h"}}))).await;
    let task = open_task(&rt, &id).await;
    assert_eq!(task.instance.as_deref(), Some(id.0.as_str()));
    assert_eq!(task.title, "Reroute order ord-17");
    assert_eq!(task.assignees, ["group:dispatchers"]);
    assert_eq!(task.due_at_ms, monday_9() + HOUR);
    assert_eq!(task.window_end_at_ms, monday_9() + 4 * HOUR);
    let running = rt.store().instance(&id).await.unwrap().unwrap();
    assert!(
        !running.status.is_terminal(),
        "the flow waits for the answer"
    );

    clock.advance(10 * MIN);
    let answered = rt
        .approvals()
        .decide(
            &task.id,
            &dana(),
            Answer::Approve,
            Some("driver 3 is close".into()),
        )
        .await
        .expect("dana may approve");
    assert_eq!(answered.status, ApprovalStatus::Approved);

    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["approved"], true);
    assert_eq!(out["verdict"], "approved");
    assert_eq!(out["by"], "dana");
    assert_eq!(out["reason"], "driver 3 is close");
    assert_eq!(out["late"], false);
    assert_eq!(
        out["output"],
        json!({"action": "reroute", "driver": "drv-3"})
    );
    assert_eq!(out["task"], task.id.as_str());
    assert_eq!(
        out["at"],
        baton_core::time::iso8601_utc(monday_9() + 10 * MIN)
    );

    let stored = rt.approvals().get(&task.id).await.unwrap();
    assert_eq!(stored.decided_by.as_deref(), Some("dana"));
    assert_eq!(stored.reason.as_deref(), Some("driver 3 is close"));
    assert_eq!(stored.decided_at_ms, Some(monday_9() + 10 * MIN));
    assert_eq!(stored.verdict, Some(Verdict::Approved));
}

#[tokio::test]
async fn only_assigned_approvers_may_answer() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let id = start(
        &rt,
        "who",
        ask(json!({"assignees": ["group:dispatchers", "otto"]})),
    )
    .await;
    let task = open_task(&rt, &id).await;
    let approvals = rt.approvals();
    let refused = [
        // In the group, but may only look.
        person("vic", &[Role::Viewer], &["dispatchers"]),
        // May start and cancel instances, not approve.
        person("opal", &[Role::Operator], &["dispatchers"]),
        // An approver, but not asked.
        person("ned", &[Role::Approver], &["warehouse"]),
        // An approver, but of another task.
        person("group:dispatchers", &[Role::Approver], &[]),
    ];
    for actor in &refused {
        let e = approvals
            .decide(&task.id, actor, Answer::Approve, None)
            .await
            .expect_err(&actor.name);
        assert!(
            matches!(e, ApprovalError::Forbidden { .. }),
            "{}: {e}",
            actor.name
        );
    }
    assert_eq!(
        approvals.get(&task.id).await.unwrap().status,
        ApprovalStatus::Open,
        "refused answers change nothing"
    );
    let unknown = approvals
        .decide("no-such-task", &dana(), Answer::Approve, None)
        .await
        .expect_err("unknown task");
    assert!(matches!(unknown, ApprovalError::NotFound(_)));

    // Named directly; and an admin may answer for anyone.
    let otto = person("otto", &[Role::Approver], &[]);
    let admin = person("ada", &[Role::Admin], &[]);
    let inbox = approvals
        .list(&ApprovalQuery::inbox_of(&otto))
        .await
        .unwrap();
    assert_eq!(inbox.len(), 1);
    assert!(
        approvals
            .list(&ApprovalQuery::inbox_of(&admin))
            .await
            .unwrap()
            .is_empty()
    );
    approvals
        .decide(
            &task.id,
            &admin,
            Answer::Reject,
            Some("duplicate request".into()),
        )
        .await
        .expect("an admin may answer");
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["by"], "ada");
    assert_eq!(out["approved"], false);
    let again = approvals
        .decide(&task.id, &otto, Answer::Approve, None)
        .await
        .expect_err("answered already");
    assert!(matches!(again, ApprovalError::Conflict { .. }), "{again}");
}

#[tokio::test]
async fn rejections_and_overrides_need_a_reason_and_are_recorded() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let approvals = rt.approvals();

    let rejected = start(&rt, "reject", ask(json!({}))).await;
    let task = open_task(&rt, &rejected).await;
    for reason in [None, Some("   ".to_string())] {
        let e = approvals
            .decide(&task.id, &dana(), Answer::Reject, reason)
            .await
            .expect_err("no reason");
        assert!(matches!(e, ApprovalError::Invalid { .. }), "{e}");
    }
    approvals
        .decide(
            &task.id,
            &dana(),
            Answer::Reject,
            Some("driver 3 is off today".into()),
        )
        .await
        .expect("a reasoned rejection");
    let out = output(&finish(&rt, &rejected).await).clone();
    assert_eq!(out["approved"], false);
    assert_eq!(out["verdict"], "rejected");
    assert_eq!(out["by"], "dana");
    assert_eq!(out["reason"], "driver 3 is off today");
    assert!(
        out.get("output").is_none(),
        "a rejection has no output: {out}"
    );

    let overridden = start(&rt, "override", ask(json!({}))).await;
    let task = open_task(&rt, &overridden).await;
    let replacement = json!({"action": "reroute", "driver": "drv-9"});
    let e = approvals
        .decide(
            &task.id,
            &dana(),
            Answer::Override {
                output: replacement.clone(),
            },
            None,
        )
        .await
        .expect_err("no reason");
    assert!(matches!(e, ApprovalError::Invalid { .. }));
    approvals
        .decide(
            &task.id,
            &dana(),
            Answer::Override {
                output: replacement.clone(),
            },
            Some("drv-9 knows the lumber yard".into()),
        )
        .await
        .expect("a reasoned override");
    let out = output(&finish(&rt, &overridden).await).clone();
    assert_eq!(out["verdict"], "overridden");
    assert_eq!(out["approved"], true);
    assert_eq!(out["output"], replacement);
    let stored = approvals.get(&task.id).await.unwrap();
    assert_eq!(
        stored.data,
        json!({"action": "reroute", "driver": "drv-3"}),
        "the proposal is kept"
    );
    assert_eq!(stored.output, Some(replacement));
    assert_eq!(
        stored.reason.as_deref(),
        Some("drv-9 knows the lumber yard")
    );
}

#[tokio::test]
async fn a_late_level_escalates_and_the_next_level_answers() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let approvals = rt.approvals();
    let id = start(
        &rt,
        "escalate",
        ask(json!({
            "due": {"fixed": "PT1H"},
            "escalate": [["fleet-manager"], "group:directors"],
            "window": "PT8H",
        })),
    )
    .await;
    let task = open_task(&rt, &id).await;
    let early = approvals
        .decide(&task.id, &fleet_manager(), Answer::Approve, None)
        .await
        .expect_err("not asked yet");
    assert!(matches!(early, ApprovalError::Forbidden { .. }));

    clock.advance(HOUR);
    let up = task_where(&approvals, &id, "the first escalation", |t| t.level == 1).await;
    assert_eq!(up.status, ApprovalStatus::Open);
    assert_eq!(up.assignees, ["fleet-manager"]);
    assert_eq!(up.offered_at_ms, monday_9() + HOUR);
    assert_eq!(up.due_at_ms, monday_9() + 2 * HOUR);
    assert_eq!(up.escalations.len(), 1);
    let e = &up.escalations[0];
    assert_eq!((e.from_level, e.to_level), (0, 1));
    assert_eq!(e.from, ["group:dispatchers"]);
    assert_eq!(e.to, ["fleet-manager"]);
    assert_eq!(e.at_ms, monday_9() + HOUR);
    assert_eq!(e.missed_due_at_ms, monday_9() + HOUR);
    // The fleet manager now sees it; the dispatchers still do (they may still answer).
    let fm_inbox = approvals
        .list(&ApprovalQuery::inbox_of(&fleet_manager()))
        .await
        .unwrap();
    assert_eq!(fm_inbox.len(), 1);
    assert_eq!(
        approvals
            .list(&ApprovalQuery::inbox_of(&dana()))
            .await
            .unwrap()
            .len(),
        1
    );

    clock.advance(30 * MIN);
    approvals
        .decide(
            &task.id,
            &fleet_manager(),
            Answer::Approve,
            Some("go".into()),
        )
        .await
        .expect("the next level answers");
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["by"], "fleet-manager");
    assert_eq!(out["late"], false, "on time for the level that answered");
    let stored = approvals.get(&task.id).await.unwrap();
    assert_eq!(stored.level, 1, "no further escalation after the answer");
    assert_eq!(stored.escalations.len(), 1);
}

#[tokio::test]
async fn every_level_escalates_in_turn_and_the_last_stays_open_until_answered() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let approvals = rt.approvals();
    let id = start(
        &rt,
        "chain",
        ask(json!({
            "due": "30m",
            "escalate": ["fleet-manager", "group:directors"],
            "window": "PT8H",
        })),
    )
    .await;
    open_task(&rt, &id).await;
    clock.advance(30 * MIN);
    task_where(&approvals, &id, "level 1", |t| t.level == 1).await;
    clock.advance(30 * MIN);
    let top = task_where(&approvals, &id, "level 2", |t| t.level == 2).await;
    assert_eq!(top.assignees, ["group:directors"]);
    assert_eq!(top.escalations.len(), 2);
    assert_eq!(top.escalations[1].at_ms, monday_9() + HOUR);
    // Past the last level's due time nothing more can be escalated: the task is late, open,
    // and counted as such.
    clock.advance(HOUR);
    assert_eq!(approvals.due_counts().await.unwrap(), (1, 1));
    let director = person("dora", &[Role::Approver], &["directors"]);
    approvals
        .decide(&top.id, &director, Answer::Approve, None)
        .await
        .expect("a late answer of the last level");
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["late"], true);
    assert_eq!(approvals.due_counts().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn an_answer_for_a_cancelled_instance_is_refused() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let id = start(&rt, "cancelled", ask(json!({}))).await;
    let task = open_task(&rt, &id).await;
    let status = guard("the cancel", rt.cancel(&id, "customer called", "ops"))
        .await
        .expect("cancelled");
    assert_eq!(status, Status::Cancelled);
    let e = rt
        .approvals()
        .decide(&task.id, &dana(), Answer::Approve, None)
        .await
        .expect_err("nothing waits for the answer");
    match e {
        ApprovalError::Conflict { why } => assert!(why.contains("cancelled"), "{why}"),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_late_answer_is_accepted() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let approvals = rt.approvals();
    let id = start(&rt, "late", ask(json!({"due": {"fixed": "PT1H"}}))).await;
    let task = open_task(&rt, &id).await;
    assert_eq!(approvals.due_counts().await.unwrap(), (1, 0));
    clock.advance(2 * HOUR);
    assert_eq!(approvals.due_counts().await.unwrap(), (1, 1));
    assert!(
        approvals
            .get(&task.id)
            .await
            .unwrap()
            .is_late(clock_now(&clock))
    );
    let answered = approvals
        .decide(&task.id, &eli(), Answer::Approve, None)
        .await
        .expect("late but open");
    assert_eq!(answered.answered_late, Some(true));
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["approved"], true);
    assert_eq!(out["late"], true);
    assert_eq!(out["by"], "eli");
    assert_eq!(approvals.due_counts().await.unwrap(), (0, 0));
}

fn clock_now(clock: &ManualClock) -> u64 {
    baton_engine::Clock::now_ms(clock)
}

#[tokio::test]
async fn the_window_end_approves_by_default() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let approvals = rt.approvals();
    let id = start(
        &rt,
        "default",
        ask(json!({"window": "2h", "due": "1h", "on_window_end": "approve"})),
    )
    .await;
    let task = open_task(&rt, &id).await;
    clock.advance(2 * HOUR);
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["approved"], true);
    assert_eq!(out["verdict"], "defaulted");
    assert_eq!(out["by"], "baton");
    assert_eq!(out["reason"], "window ended");
    assert_eq!(
        out["output"],
        json!({"action": "reroute", "driver": "drv-3"})
    );
    let stored = approvals.get(&task.id).await.unwrap();
    assert_eq!(stored.status, ApprovalStatus::Defaulted);
    assert_eq!(stored.decided_by.as_deref(), Some("baton"));
    assert_eq!(stored.decided_at_ms, Some(monday_9() + 2 * HOUR));
    let after = approvals
        .decide(&task.id, &dana(), Answer::Approve, None)
        .await
        .expect_err("the window has ended");
    assert!(matches!(after, ApprovalError::Conflict { .. }));
}

#[tokio::test]
async fn the_window_end_rejects_by_default() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let id = start(
        &rt,
        "default-reject",
        ask(json!({"window": "30m", "on_window_end": "reject"})),
    )
    .await;
    open_task(&rt, &id).await;
    clock.advance(30 * MIN);
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["approved"], false);
    assert_eq!(out["verdict"], "defaulted");
    assert!(out.get("output").is_none());
}

#[tokio::test]
async fn the_window_end_fails_with_a_timeout_problem() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let approvals = rt.approvals();
    let id = start(&rt, "expire", ask(json!({"window": "PT1H"}))).await;
    let task = open_task(&rt, &id).await;
    // Answers are refused once the window has ended, even before Baton has closed the task.
    clock.advance(HOUR);
    let late = approvals
        .decide(&task.id, &dana(), Answer::Approve, None)
        .await
        .expect_err("the window has ended");
    assert!(matches!(late, ApprovalError::Conflict { .. }));
    let r = finish(&rt, &id).await;
    assert_eq!(r.status, Status::Faulted);
    let problem = r.error.expect("a problem");
    assert_eq!(problem.kind(), Some(ErrorKind::Timeout));
    let detail = problem.detail.unwrap_or_default();
    assert!(detail.contains("not answered"), "{detail}");
    assert!(detail.contains("Reroute order ord-17"), "{detail}");
    assert_eq!(
        approvals.get(&task.id).await.unwrap().status,
        ApprovalStatus::Expired
    );

    // A flow may catch the timeout and take its own way.
    let caught = format!(
        "document: {{ dsl: '1.0.3', namespace: test, name: caught, version: '1.0.0' }}\n\
         do:\n  - guarded:\n      try:\n        - ask:\n            call: approval\n            with: {}\n\
         \x20     catch:\n        errors:\n          with:\n            type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout\n\
         \x20       as: err\n        do:\n          - fallback:\n              set:\n                timedOut: true\n                status: ${{ $err.status }}\n",
        ask(json!({"window": "PT1H", "instance": "${ $workflow.id }"}))
    );
    let program = rt.register_flow(&caught).await.expect("valid flow");
    let id = rt.start(program, json!({})).await.unwrap();
    open_task(&rt, &id).await;
    clock.advance(HOUR);
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out, json!({"timedOut": true, "status": 408}));
}

#[tokio::test]
async fn an_adaptive_due_time_falls_in_working_hours() {
    // Friday 16:30 in Chicago, one hour of working time: 30 minutes on Friday, 30 on Monday.
    let friday = chicago(2025, 3, 7, 16, 30);
    let clock = Arc::new(ManualClock::new(friday));
    let rt = memory_runtime(&clock);
    let id = start(
        &rt,
        "adaptive",
        ask(json!({
            "window": "P5D",
            "due": {"adaptive": {
                "calendar": {"zone": "America/Chicago", "days": ["mon", "tue", "wed", "thu", "fri"], "hours": "08:00-17:00"},
                "default": "PT1H", "min": "PT15M", "max": "PT4H",
            }},
            "escalate": [["fleet-manager"]],
        })),
    )
    .await;
    let task = open_task(&rt, &id).await;
    assert_eq!(task.due_at_ms, chicago(2025, 3, 10, 8, 30));
    // The weekend does not make it late.
    clock.advance(chicago(2025, 3, 10, 8, 0) - friday);
    assert_eq!(rt.approvals().due_counts().await.unwrap(), (1, 0));
    let same = rt.approvals().get(&task.id).await.unwrap();
    assert_eq!(same.level, 0);
    // At Monday 08:30 it escalates; the fleet manager's due time is again one working hour.
    clock.advance(30 * MIN);
    let up = task_where(&rt.approvals(), &id, "the escalation", |t| t.level == 1).await;
    assert_eq!(up.due_at_ms, chicago(2025, 3, 10, 9, 30));
}

#[tokio::test]
async fn an_adaptive_due_time_follows_the_assignees_past_answers() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let approvals = rt.approvals();
    let adaptive = |assignees: Value| {
        ask(json!({
            "assignees": assignees,
            "window": "PT8H",
            "due": {"adaptive": {
                "calendar": {"zone": "America/Chicago", "hours": ["08:00-12:00", "13:00-17:00"]},
                "default": "PT30M", "min": "PT5M", "max": "PT2H",
            }},
        }))
    };
    // The dispatchers answer in 10, 40 and 20 minutes.
    for (i, took) in [10, 40, 20].into_iter().enumerate() {
        let id = start(
            &rt,
            &format!("history-{i}"),
            adaptive(json!(["group:dispatchers"])),
        )
        .await;
        let task = open_task(&rt, &id).await;
        clock.advance(took * MIN);
        approvals
            .decide(&task.id, &dana(), Answer::Approve, None)
            .await
            .unwrap();
        finish(&rt, &id).await;
    }
    let start_at = clock_now(&clock); // 10:10
    // Their p75 (nearest rank of three: the slowest) is 40 minutes.
    let id = start(&rt, "learned", adaptive(json!(["group:dispatchers"]))).await;
    assert_eq!(open_task(&rt, &id).await.due_at_ms, start_at + 40 * MIN);
    // Someone with no history gets the default.
    let id = start(&rt, "fresh", adaptive(json!(["otto"]))).await;
    assert_eq!(open_task(&rt, &id).await.due_at_ms, start_at + 30 * MIN);
    // Asked at 11:50, 40 working minutes end after lunch, at 13:30.
    clock.advance(100 * MIN);
    let id = start(&rt, "lunch", adaptive(json!(["group:dispatchers"]))).await;
    assert_eq!(
        open_task(&rt, &id).await.due_at_ms,
        chicago(2025, 3, 10, 13, 30)
    );
}

#[tokio::test]
async fn bad_arguments_fail_the_call_with_a_validation_problem() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let cases = [
        (ask(json!({"window": "soon"})), "`window`"),
        (ask(json!({"assignees": []})), "`assignees`"),
        (ask(json!({"on_window_end": "shrug"})), "`on_window_end`"),
        (ask(json!({"escalate": ["fleet-manager"]})), "`due`"),
        (
            ask(
                json!({"due": {"adaptive": {"calendar": {"zone": "Nowhere/City", "hours": "08:00-17:00"}, "default": "1h", "min": "1m", "max": "2h"}}}),
            ),
            "zone",
        ),
    ];
    for (i, (with, named)) in cases.into_iter().enumerate() {
        let program = rt
            .register_flow(&flow(&format!("bad-{i}"), with))
            .await
            .expect("the flow itself is valid");
        let r = guard("the call to fail", rt.run(program, json!({})))
            .await
            .unwrap();
        assert_eq!(r.status, Status::Faulted);
        let p = r.error.expect("a problem");
        assert_eq!(p.kind(), Some(ErrorKind::Validation), "{p:?}");
        let detail = p.detail.unwrap_or_default();
        assert!(detail.contains(named), "{named} not in {detail}");
    }
    assert!(
        rt.approvals()
            .list(&ApprovalQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "no task is created for a call that cannot be answered"
    );
}

#[tokio::test]
async fn the_inbox_lists_by_due_time_and_pages() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let approvals = rt.approvals();
    let mut ids = Vec::new();
    for (name, due, who) in [
        ("c", "3h", "group:dispatchers"),
        ("a", "1h", "group:dispatchers"),
        ("b", "2h", "otto"),
    ] {
        let id = start(&rt, name, ask(json!({"due": due, "assignees": [who]}))).await;
        ids.push(open_task(&rt, &id).await);
    }
    let all = approvals
        .list(&ApprovalQuery {
            status: Some(ApprovalStatus::Open),
            ..ApprovalQuery::default()
        })
        .await
        .unwrap();
    let dues: Vec<u64> = all.iter().map(|t| t.due_at_ms - monday_9()).collect();
    assert_eq!(dues, [HOUR, 2 * HOUR, 3 * HOUR]);
    let first = approvals
        .list(&ApprovalQuery {
            limit: 2,
            ..ApprovalQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let rest = approvals
        .list(&ApprovalQuery {
            limit: 2,
            cursor: Some(first[1].cursor()),
            ..ApprovalQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, all[2].id);
    let mine = approvals
        .list(&ApprovalQuery::inbox_of(&dana()))
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|t| t.assignees == ["group:dispatchers"]));
    let bad = approvals
        .list(&ApprovalQuery {
            cursor: Some("yesterday".into()),
            ..ApprovalQuery::default()
        })
        .await
        .expect_err("bad cursor");
    assert!(matches!(bad, ApprovalError::Invalid { .. }));
}

/// Runs a runtime over `db` on an executor of its own until the instance's approval task is open,
/// then drops the executor with every task in it (the in-process `kill -9`) and closes the store.
fn crash_with_an_open_approval(
    db: &Path,
    clock: Arc<ManualClock>,
    flow: String,
) -> (InstanceId, String) {
    let db = db.to_path_buf();
    std::thread::spawn(move || {
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("executor");
        let store = sqlite(&db);
        let out = executor.block_on(async {
            let rt =
                baton_engine::runtime_with_clock(store.clone(), RuntimeOptions::default(), clock);
            let program = rt.register_flow(&flow).await.expect("valid flow");
            let id = rt.start(program, json!({})).await.expect("started");
            let task = open_task(&rt, &id).await;
            (id, task.id)
        });
        drop(executor);
        store.close();
        out
    })
    .join()
    .expect("the crashing runtime's thread")
}

#[tokio::test]
async fn an_open_approval_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baton.db");
    let clock = Arc::new(ManualClock::new(monday_9()));
    let (id, task_id) = crash_with_an_open_approval(
        &db,
        clock.clone(),
        flow(
            "restart",
            ask(json!({"due": "1h", "escalate": ["fleet-manager"]})),
        ),
    );

    let rt =
        baton_engine::runtime_with_clock(sqlite(&db), RuntimeOptions::default(), clock.clone());
    let resumed = rt.resume_all().await.unwrap();
    assert_eq!(resumed, std::slice::from_ref(&id));
    // The resumed call found the task it had created (same id), and still escalates on time.
    clock.advance(HOUR);
    let up = task_where(&rt.approvals(), &id, "the escalation after restart", |t| {
        t.level == 1
    })
    .await;
    assert_eq!(up.id, task_id);
    assert_eq!(up.created_at_ms, monday_9());
    rt.approvals()
        .decide(
            &task_id,
            &fleet_manager(),
            Answer::Approve,
            Some("ok".into()),
        )
        .await
        .expect("answered after the restart");
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["by"], "fleet-manager");
    assert_eq!(out["task"], task_id.as_str());
}

#[tokio::test]
async fn an_answer_given_while_the_process_was_down_is_delivered_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baton.db");
    let clock = Arc::new(ManualClock::new(monday_9()));
    let (id, task_id) =
        crash_with_an_open_approval(&db, clock.clone(), flow("down", ask(json!({}))));

    let rt =
        baton_engine::runtime_with_clock(sqlite(&db), RuntimeOptions::default(), clock.clone());
    // Answered through the inbox before the instance is resumed.
    rt.approvals()
        .decide(
            &task_id,
            &dana(),
            Answer::Reject,
            Some("no longer needed".into()),
        )
        .await
        .expect("the task is open in the store");
    rt.resume_all().await.unwrap();
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["approved"], false);
    assert_eq!(out["reason"], "no longer needed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_answers_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = baton_engine::runtime_with_clock(
        sqlite(&dir.path().join("baton.db")),
        RuntimeOptions::default(),
        clock.clone(),
    );
    for round in 0..5 {
        let id = start(&rt, &format!("race-{round}"), ask(json!({}))).await;
        let task = open_task(&rt, &id).await;
        let approve = tokio::spawn({
            let (approvals, id) = (rt.approvals(), task.id.clone());
            async move { approvals.decide(&id, &dana(), Answer::Approve, None).await }
        });
        let reject = tokio::spawn({
            let (approvals, id) = (rt.approvals(), task.id.clone());
            async move {
                approvals
                    .decide(&id, &eli(), Answer::Reject, Some("not today".into()))
                    .await
            }
        });
        let (a, r) = (approve.await.unwrap(), reject.await.unwrap());
        let winner = match (&a, &r) {
            (Ok(t), Err(ApprovalError::Conflict { .. }))
            | (Err(ApprovalError::Conflict { .. }), Ok(t)) => t.decided_by.clone().unwrap(),
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        let out = output(&finish(&rt, &id).await).clone();
        assert_eq!(out["by"], winner.as_str());
        assert_eq!(out["approved"], winner == "dana");
        let stored = rt.approvals().get(&task.id).await.unwrap();
        assert_eq!(stored.decided_by.as_deref(), Some(winner.as_str()));
    }
}

#[tokio::test]
async fn the_demo_example_branches_on_the_answer() {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/approval-demo.yaml"),
    )
    .expect("the example");
    let clock = Arc::new(ManualClock::new(chicago(2025, 3, 10, 11, 10))); // 12:10 in New York
    let rt = memory_runtime(&clock);
    let program = rt
        .register_flow(&source)
        .await
        .expect("the example is valid");
    let input = json!({"order": "ord-1042", "delay": 42, "backup_driver": "drv-17"});

    let id = rt.start(program.clone(), input.clone()).await.unwrap();
    let task = open_task(&rt, &id).await;
    assert_eq!(task.title, "Reroute order ord-1042 (42 min late)");
    assert_eq!(task.data["action"], "reroute");
    // 15 working minutes from 12:10 fall after the lunch hour.
    assert_eq!(task.due_at_ms, chicago(2025, 3, 10, 12, 15));
    rt.approvals()
        .decide(&task.id, &dana(), Answer::Approve, None)
        .await
        .unwrap();
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["order"], "ord-1042");
    assert_eq!(out["applied"]["driver"], "drv-17");
    assert_eq!(out["approved_by"], "dana");

    let id = rt.start(program, input).await.unwrap();
    open_task(&rt, &id).await;
    clock.advance(2 * HOUR);
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["applied"], Value::Null);
    assert_eq!(out["verdict"], "defaulted");
    assert_eq!(out["reason"], "window ended");
}

/// A policy for routes: directors override, a fleet manager (`managers`) confirms.
fn route_policy() -> Arc<baton_engine::approvals::OverridePolicy> {
    use baton_engine::approvals::{OverridePolicy, OverrideRule, Principal, ScopedRule};
    Arc::new(OverridePolicy {
        rules: vec![ScopedRule {
            flow: "test/*".into(),
            decision: "route".into(),
            rule: OverrideRule {
                forbidden: false,
                allow: Some(vec![Principal("group:directors".into())]),
                second_approver: Some(vec![Principal("group:managers".into())]),
            },
        }],
    })
}

fn director() -> Actor {
    person("rhea", &[Role::Approver], &["directors"])
}

#[tokio::test]
async fn a_pending_override_that_nobody_confirms_never_takes_effect() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let id = start(
        &rt,
        "pending",
        ask(json!({"decision": "route", "on_window_end": "reject"})),
    )
    .await;
    let task = open_task(&rt, &id).await;
    let inbox = rt.approvals().with_override_policy(route_policy());
    let asked = inbox
        .decide(
            &task.id,
            &director(),
            Answer::Override {
                output: json!({"action": "reroute", "driver": "drv-9"}),
            },
            Some("the mayor's order".into()),
        )
        .await
        .expect("a director may ask");
    assert_eq!(asked.status, ApprovalStatus::Open);
    assert_eq!(asked.pending_override.as_ref().unwrap().by, "rhea");
    // Nobody confirms: at the window's end Baton rejects, and the override was never in effect.
    clock.advance(4 * HOUR);
    let out = output(&finish(&rt, &id).await).clone();
    assert_eq!(out["verdict"], "defaulted");
    assert_eq!(out["approved"], false);
    assert!(out.get("override").is_none(), "{out}");
    let closed = rt.approvals().get(&task.id).await.unwrap();
    assert_eq!(closed.verdict, Some(Verdict::Defaulted));
    assert!(closed.confirmed_by.is_none());
    // Too late to confirm now.
    let late = inbox
        .confirm_override(&task.id, &fleet_manager(), true, None)
        .await
        .unwrap_err();
    assert!(matches!(late, ApprovalError::Conflict { .. }), "{late}");
    // The report does not count it as waiting for a second approver: it lapsed.
    let report = inbox.override_report(0, u64::MAX, 1000).await.unwrap();
    assert_eq!((report.total, report.pending, report.lapsed), (1, 0, 1));
    assert_eq!(report.overrides[0].status, "lapsed");
}

#[tokio::test]
async fn two_second_approvers_at_once_confirm_exactly_once() {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let rt = memory_runtime(&clock);
    let id = start(&rt, "race", ask(json!({"decision": "route"}))).await;
    let task = open_task(&rt, &id).await;
    let inbox = rt.approvals().with_override_policy(route_policy());
    inbox
        .decide(
            &task.id,
            &director(),
            Answer::Override {
                output: json!({"action": "reroute", "driver": "drv-9"}),
            },
            Some("the mayor's order".into()),
        )
        .await
        .expect("asked");
    let other_manager = person("mo", &[Role::Approver], &["managers"]);
    let manager = fleet_manager();
    let (a, b) = tokio::join!(
        inbox.confirm_override(&task.id, &manager, true, None),
        inbox.confirm_override(&task.id, &other_manager, false, Some("no".into())),
    );
    // One of them answered the pending override; the other found none waiting.
    assert!(a.is_ok() != b.is_ok(), "{a:?} / {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert!(matches!(
        loser,
        Err(ApprovalError::Override {
            refusal: baton_engine::approvals::OverrideRefusal::NothingPending,
            ..
        })
    ));
    let t = rt.approvals().get(&task.id).await.unwrap();
    assert!(t.pending_override.is_none());
    if t.verdict == Some(Verdict::Overridden) {
        let out = output(&finish(&rt, &id).await).clone();
        assert_eq!(out["override"]["confirmed_by"], "fleet-manager");
        assert_eq!(out["output"]["driver"], "drv-9");
    } else {
        assert_eq!(t.status, ApprovalStatus::Open);
        assert_eq!(t.refused_overrides.len(), 1);
    }
}
