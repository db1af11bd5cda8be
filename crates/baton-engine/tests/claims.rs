//! Claims on business entities, end to end: the dispatcher and the optimizer race for one
//! delivery slot (`examples/maplewood/slot-claims.yaml`) and exactly one wins; the other takes its
//! fallback naming the holder; a release lets the next claim win with a higher fencing token; an
//! expired lease is taken over and its old holder learns so; waiting claimants are woken by a
//! release and give up at their deadline; an ended instance's claims are released.
//!
//! Time is a `ManualClock`: leases expire and waits end only when a test moves it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton_core::{InstanceId, Outcome, Status};
use baton_engine::claims::{
    CLAIM_CONFLICT, ClaimArgs, ClaimError, ClaimFunction, ClaimStatus, Claims, Released,
};
use baton_engine::{Clock, Features, Function, ManualClock, RunResult, Runtime, RuntimeOptions};
use baton_store::{
    Doc, DocQuery, DocStore, DocWatch, DocWrite, KeyRange, MemoryStore, Store, StoreError,
};
use serde_json::{Value, json};

const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;
/// 2026-11-23T15:00:00Z, 10:00 in New York.
const T0: u64 = 1_795_446_000_000;
const SLOT: &str = "slot:addr-19/10:00";

fn example() -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/maplewood/slot-claims.yaml");
    std::fs::read_to_string(path).expect("the example")
}

/// Until the instance's claim answer is journaled (its timer then counts from the clock's time
/// now), so that moving the clock fires that timer.
async fn until_claim_answered(rt: &Runtime<MemoryStore>, id: &InstanceId) {
    guard("the instance to wait on its timer", async {
        loop {
            let journal = rt.store().journal(id).await.expect("read");
            let answered = journal.iter().any(|e| {
                matches!(e, baton_core::JournalEntry::EffectCompleted { key, .. } if key.0.contains("claimSlot"))
            });
            if answered {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// Fails the test instead of hanging it when something never happens.
async fn guard<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn runtime(clock: &Arc<ManualClock>) -> Runtime<MemoryStore> {
    baton_engine::runtime_with_clock(
        Arc::new(MemoryStore::new()),
        RuntimeOptions::default(),
        clock.clone(),
    )
}

async fn start(rt: &Runtime<MemoryStore>, flow: &str, input: Value) -> InstanceId {
    let program = rt.register_flow(flow).await.expect("a valid flow");
    rt.start(program, input).await.expect("started")
}

async fn ended(rt: &Runtime<MemoryStore>, id: &InstanceId) -> RunResult {
    guard("the instance to end", rt.wait(id))
        .await
        .expect("wait")
}

async fn output(rt: &Runtime<MemoryStore>, id: &InstanceId) -> Value {
    let r = ended(rt, id).await;
    assert_eq!(r.status, Status::Completed, "{:?}", r.error);
    r.output.expect("an output")
}

/// Waits until the claims satisfy `pred`.
async fn claims_where<S: Store>(claims: &Claims<S>, what: &str, pred: impl AsyncPred<S>) {
    guard(what, async {
        let mut changes = claims.changes();
        loop {
            if pred.holds(claims).await {
                return;
            }
            changes.changed().await.expect("the notifier lives");
        }
    })
    .await
}

trait AsyncPred<S: Store> {
    fn holds(&self, claims: &Claims<S>) -> impl Future<Output = bool>;
}

/// The entity is held (live) by `holder`.
struct HeldBy<'a>(&'a str);
impl<S: Store> AsyncPred<S> for HeldBy<'_> {
    async fn holds(&self, claims: &Claims<S>) -> bool {
        claims
            .holders()
            .await
            .expect("holders")
            .iter()
            .any(|c| c.entity == SLOT && c.holder == self.0)
    }
}

/// Someone waits for the slot.
struct Waiting;
impl<S: Store> AsyncPred<S> for Waiting {
    async fn holds(&self, claims: &Claims<S>) -> bool {
        claims
            .waiting()
            .await
            .expect("waiting")
            .iter()
            .any(|w| w.entity == SLOT)
    }
}

fn role(name: &str, driver: &str) -> Value {
    json!({"role": name, "slot": "addr-19/10:00", "driver": driver})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_and_optimizer_race_for_one_slot_and_one_wins() {
    let clock = Arc::new(ManualClock::new(T0));
    let rt = runtime(&clock);
    let flow = example();
    let dispatcher = start(&rt, &flow, role("dispatcher", "drv-7")).await;
    let optimizer = start(&rt, &flow, role("optimizer", "drv-12")).await;

    // The loser ends at once with its fallback; the winner holds the slot while its driver
    // confirms (a one-minute wait that only moves with the clock).
    let (loser, winner) = guard("one of them to end", async {
        tokio::select! {
            _ = rt.wait(&dispatcher) => (dispatcher.clone(), optimizer.clone()),
            _ = rt.wait(&optimizer) => (optimizer.clone(), dispatcher.clone()),
        }
    })
    .await;
    let lost = output(&rt, &loser).await;
    assert_eq!(lost["assigned"], false, "{lost}");
    assert_eq!(
        lost["holder"],
        winner.0.as_str(),
        "the fallback names the holder"
    );
    assert_eq!(lost["token_of_holder"], 1);
    let (loser_role, winner_role) = if loser == dispatcher {
        ("dispatcher", "optimizer assigns drv-12")
    } else {
        ("optimizer", "dispatcher assigns drv-7")
    };
    assert_eq!(lost["role"], loser_role);
    assert_eq!(lost["holder_label"], winner_role);
    let expected_fallback = if loser_role == "dispatcher" {
        "keep the backup driver on standby"
    } else {
        "leave the gap and re-plan the route"
    };
    assert_eq!(lost["fallback"], expected_fallback);

    let holders = rt.claims().holders().await.expect("holders");
    assert_eq!(holders.len(), 1, "one owner: {holders:?}");
    assert_eq!(holders[0].holder, winner.0);
    assert_eq!(holders[0].instance.as_deref(), Some(winner.0.as_str()));
    assert_eq!(holders[0].token, 1);
    let running = rt.store().instance(&winner).await.unwrap().unwrap();
    assert!(!running.status.is_terminal(), "the winner still holds it");

    // The driver confirms; the winner assigns and releases. The clock moves only once the
    // winner waits on its timer: the claim's answer is journaled at the clock's time, and the
    // timer counts from there.
    until_claim_answered(&rt, &winner).await;
    clock.advance(MIN);
    let won = output(&rt, &winner).await;
    assert_eq!(won["assigned"], true, "{won}");
    assert_eq!(won["token"], 1);
    assert_eq!(won["released"], true);
    assert!(rt.claims().holders().await.expect("holders").is_empty());
    let after = rt.claims().get(SLOT).await.unwrap().expect("kept");
    assert_eq!(after.status, ClaimStatus::Released);

    // A later claim wins with a higher fencing token.
    let third = start(&rt, &flow, role("dispatcher", "drv-9")).await;
    claims_where(&rt.claims(), "the third claim", HeldBy(&third.0)).await;
    until_claim_answered(&rt, &third).await;
    clock.advance(MIN);
    let out = output(&rt, &third).await;
    assert_eq!(out["assigned"], true, "{out}");
    assert_eq!(out["token"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_its_old_holder_learns_it() {
    let clock = Arc::new(ManualClock::new(T0));
    let rt = runtime(&clock);
    let flow = example();
    let mut slow = role("dispatcher", "drv-7");
    slow["lease"] = json!("30s");
    let dispatcher = start(&rt, &flow, slow).await;
    claims_where(
        &rt.claims(),
        "the dispatcher's claim",
        HeldBy(&dispatcher.0),
    )
    .await;
    until_claim_answered(&rt, &dispatcher).await;

    // The lease runs out before the dispatcher's driver confirms.
    clock.advance(45 * SEC);
    assert!(rt.claims().holders().await.expect("holders").is_empty());
    let optimizer = start(&rt, &flow, role("optimizer", "drv-12")).await;
    claims_where(&rt.claims(), "the takeover", HeldBy(&optimizer.0)).await;
    until_claim_answered(&rt, &optimizer).await;
    let taken = rt.claims().get(SLOT).await.unwrap().expect("claim");
    assert_eq!(taken.token, 2, "a higher token fences the old holder out");
    let before = taken.took_over.expect("took over");
    assert_eq!(before.holder, dispatcher.0);
    assert_eq!(before.token, 1);
    assert_eq!(before.expired_at_ms, T0 + 30 * SEC);

    // The dispatcher's wait ends: its release is refused, and the flow says the slot is lost.
    clock.advance(15 * SEC);
    let lost = output(&rt, &dispatcher).await;
    assert_eq!(lost["assigned"], false, "{lost}");
    assert_eq!(lost["token"], 1);
    let why = lost["lost"].as_str().expect("why");
    assert!(
        why.contains(&optimizer.0) && why.contains("token 2"),
        "{why}"
    );
    assert!(
        rt.claims()
            .get(SLOT)
            .await
            .unwrap()
            .unwrap()
            .is_live(clock.now_ms()),
        "the refused release left the optimizer's claim alone"
    );

    clock.advance(MIN);
    let won = output(&rt, &optimizer).await;
    assert_eq!(
        (won["assigned"].clone(), won["token"].clone()),
        (json!(true), json!(2))
    );
}

const WAITER: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: slot-waiter, version: '1.0.0' }
do:
  - claimSlot:
      call: claim
      with:
        entity: 'slot:addr-19/10:00'
        instance: ${ $workflow.id }
        label: optimizer
        lease: 15m
        on_conflict: ${ .on_conflict }
        wait_for: 2m
  - keepTheSlot:
      wait: { hours: 2 }
"#;

/// Claims and ends at once: the runtime releases what it held.
const CLAIM_AND_END: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: slot-taker, version: '1.0.0' }
do:
  - claimSlot:
      call: claim
      with:
        entity: 'slot:addr-19/10:00'
        label: optimizer
        lease: 15m
        on_conflict: fail
"#;

/// The answer of an instance's `claimSlot` step, once journaled (the instance goes on waiting).
async fn claim_answer(rt: &Runtime<MemoryStore>, id: &InstanceId) -> Value {
    guard("the claim's answer", async {
        loop {
            let journal = rt.store().journal(id).await.expect("journal");
            for e in journal {
                if let baton_core::JournalEntry::EffectCompleted { key, outcome, .. } = e
                    && key.0.contains("claimSlot")
                {
                    return match outcome {
                        Outcome::Ok { value } => value,
                        other => panic!("{other:?}"),
                    };
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

fn held_by_dispatcher() -> ClaimArgs {
    ClaimArgs::parse(&json!({"entity": SLOT, "owner": "dispatcher", "lease": "15m"}))
        .expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_claimant_is_woken_by_the_release_and_gives_up_at_its_deadline() {
    let clock = Arc::new(ManualClock::new(T0));
    let rt = runtime(&clock);
    let claims = rt.claims();
    let first = claims
        .claim(&held_by_dispatcher(), "dispatcher-key-1")
        .await
        .expect("claimed");
    assert!(matches!(&first, Outcome::Ok { value } if value["token"] == 1));

    let id = start(&rt, WAITER, json!({"on_conflict": "wait"})).await;
    claims_where(&claims, "the claimant to wait", Waiting).await;
    let waits = claims.waiting().await.expect("waiting");
    assert_eq!(waits[0].holder, "dispatcher");
    assert_eq!(waits[0].instance.as_deref(), Some(id.0.as_str()));
    clock.advance(30 * SEC);
    let released = claims
        .release(SLOT, "dispatcher", None, "dispatcher")
        .await
        .expect("the holder releases");
    assert!(matches!(released, Released::Released(_)));
    let out = claim_answer(&rt, &id).await;
    assert_eq!(out["claimed"], true, "{out}");
    assert_eq!(out["token"], 2);
    assert_eq!(out["holder"], id.0.as_str());
    assert_eq!(out["waited_ms"], json!(30 * SEC));
    assert!(claims.waiting().await.expect("waiting").is_empty());

    // The next claimant waits two minutes at most, then fails with the conflict.
    let other = start(&rt, WAITER, json!({"on_conflict": "wait"})).await;
    claims_where(&claims, "the second claimant to wait", Waiting).await;
    clock.advance(2 * MIN);
    let r = ended(&rt, &other).await;
    assert_eq!(r.status, Status::Faulted);
    let problem = r.error.expect("a problem");
    assert_eq!(problem.type_, CLAIM_CONFLICT);
    let detail = problem.detail.expect("detail");
    assert!(
        detail.contains(&id.0) && detail.contains("waited 2m"),
        "{detail}"
    );

    // `fail` fails at once, naming the holder.
    let failing = start(&rt, WAITER, json!({"on_conflict": "fail"})).await;
    let r = ended(&rt, &failing).await;
    assert_eq!(r.status, Status::Faulted);
    let problem = r.error.expect("a problem");
    assert_eq!(problem.type_, CLAIM_CONFLICT);
    assert!(problem.detail.expect("detail").contains(&id.0));

    // Only the holder releases.
    let refused = claims
        .release(SLOT, "someone-else", None, "someone-else")
        .await;
    assert!(
        matches!(&refused, Err(ClaimError::NotHolder { why, .. }) if why.contains(&id.0)),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_instance_releases_what_it_held() {
    let clock = Arc::new(ManualClock::new(T0));
    let rt = runtime(&clock);
    let claims = rt.claims();
    // No `instance:` argument: the runtime tells the claim who is asking.
    let id = start(&rt, CLAIM_AND_END, json!({})).await;
    let out = output(&rt, &id).await;
    assert_eq!(out["claimed"], true, "{out}");
    assert_eq!(out["holder"], id.0.as_str());
    // The instance has ended: the runtime released its claim before reporting the end.
    assert!(claims.holders().await.expect("holders").is_empty());
    let c = claims.get(SLOT).await.expect("read").expect("the claim");
    assert_eq!(c.released_by.as_deref(), Some("instance-end"));
    assert!(
        claims
            .release_all_of(&id.0)
            .await
            .expect("again")
            .is_empty()
    );
    let next = claims
        .claim(&held_by_dispatcher(), "dispatcher-key-2")
        .await
        .expect("claimed");
    assert!(
        matches!(&next, Outcome::Ok { value } if value["token"] == 2 && value["claimed"] == true)
    );
}

/// A store whose first two reads of a claim both wait until the other has read too: two
/// claimants then both see the entity free, and only the conditional write can tell them apart.
struct RacyStore {
    inner: MemoryStore,
    reads: AtomicUsize,
    barrier: tokio::sync::Barrier,
}

impl DocStore for RacyStore {
    async fn put_doc(&self, doc: DocWrite) -> Result<u64, StoreError> {
        self.inner.put_doc(doc).await
    }
    async fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>, StoreError> {
        let d = self.inner.doc(kind, id).await?;
        if kind == "claim" && self.reads.fetch_add(1, Ordering::SeqCst) < 2 {
            self.barrier.wait().await;
        }
        Ok(d)
    }
    async fn docs(&self, kind: &str, query: &DocQuery) -> Result<Vec<Doc>, StoreError> {
        self.inner.docs(kind, query).await
    }
    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_doc(kind, id).await
    }
    async fn delete_doc_at(&self, kind: &str, id: &str, version: u64) -> Result<bool, StoreError> {
        self.inner.delete_doc_at(kind, id, version).await
    }
    async fn count_docs(&self, kind: &str, status: Option<&str>) -> Result<u64, StoreError> {
        self.inner.count_docs(kind, status).await
    }
    fn watch(&self, targets: &[(&str, KeyRange)]) -> DocWatch {
        self.inner.watch(targets)
    }
}

fn claim_args(owner: &str) -> Value {
    json!({"entity": SLOT, "owner": owner, "lease": "15m", "on_conflict": "fallback"})
}

#[tokio::test]
async fn two_claimants_that_both_saw_the_slot_free_cannot_both_win() {
    let clock: Arc<ManualClock> = Arc::new(ManualClock::new(T0));
    let store = Arc::new(RacyStore {
        inner: MemoryStore::new(),
        reads: AtomicUsize::new(0),
        barrier: tokio::sync::Barrier::new(2),
    });
    let f = ClaimFunction::new(store.clone(), clock.clone());
    let (a, b) = guard("both claims", async {
        tokio::join!(
            f.call(claim_args("dispatcher"), "key-dispatcher"),
            f.call(claim_args("optimizer"), "key-optimizer"),
        )
    })
    .await;
    let value = |o: &Outcome| match o {
        Outcome::Ok { value } => value.clone(),
        other => panic!("{other:?}"),
    };
    let (a, b) = (value(&a), value(&b));
    assert!(store.reads.load(Ordering::SeqCst) >= 3, "the race happened");
    let winners: Vec<&Value> = [&a, &b]
        .into_iter()
        .filter(|v| v["claimed"] == true)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one wins: {a} {b}");
    let (won, lost) = if a["claimed"] == true {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(lost["holder"], won["holder"]);
    assert_eq!(lost["token_of_holder"], 1);

    // The winner's call performed again (a restart before its answer was journaled) answers
    // the same; the holder claiming anew renews its lease under the same token.
    let owner = won["holder"].as_str().expect("holder").to_string();
    let key = format!("key-{owner}");
    let again = value(&f.call(claim_args(&owner), &key).await);
    assert_eq!(&again, won);
    clock.advance(MIN);
    let renewed = value(&f.call(claim_args(&owner), "key-renewal").await);
    assert_eq!(renewed["token"], 1);
    assert_eq!(renewed["renewed"], true);
    assert_eq!(renewed["expires_at_ms"], json!(T0 + MIN + 15 * MIN));
}
