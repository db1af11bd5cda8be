//! Claims: exclusive, leased ownership of a business entity (a delivery slot, a driver, an order)
//! taken and released by flows (`call: claim`, `call: release`).
//!
//! A claim is a document of kind `claim` whose id is the entity. Every change is a conditional
//! write on the version read, so of two claimants racing for a free entity exactly one write
//! lands; the other re-reads and finds the entity held. Each new holding gets a fencing token one
//! higher than the last (the document is kept when released, so tokens only grow): a provider
//! that remembers the highest token it has seen can refuse a late write from a holder whose
//! lease ran out. A lease that is not renewed expires, and the next claimant takes the entity
//! over. A holder claiming again renews its lease and keeps its token; the same call performed
//! again (after a restart, same idempotency key) answers what it answered before.
//!
//! The second claimant does what its flow says: `fail` (a `claim-conflict` problem naming the
//! holder), `fallback` (`{claimed: false, holder, …}` for the flow to branch on) or `wait` until
//! the entity is released or its lease expires, up to `wait_for` (then the conflict problem).
//! Waiting is woken by the store's watch of the claim, whichever process released it.
//!
//! Claims of an instance are released when it ends: [`Claims::release_all_of`], called by the
//! driver at the instance's end; until then, and when the holder's process is gone, the lease
//! bounds how long an entity stays taken.

use std::sync::Arc;

use baton_core::{ErrorKind, Outcome, Problem};
use baton_store::{
    Change, Collection, Doc, DocQuery, DocStore, DocWatch, Entry, KeyRange, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use baton_api::wait::{WaitDoc, human_ms, open_wait, prune_waits};
use baton_api::{Call, Clock, Function, FunctionResult};
use baton_flow::duration_ms;

/// `call: claim`.
pub const CLAIM_FUNCTION: &str = baton_core::functions::names::CLAIM;
/// `call: release`.
pub const RELEASE_FUNCTION: &str = baton_core::functions::names::RELEASE;
/// The document kind of claims (id: the entity).
pub const CLAIM_KIND: &str = "claim";
/// The document kind of claimants waiting their turn (id: the call's idempotency key), so a wait
/// keeps its deadline across a restart and `baton show` can list who waits for what.
pub const CLAIM_WAIT_KIND: &str = "claim_wait";
/// The problem type of a claim that another holder has (`on_conflict: fail`, or a wait that ran
/// out), and of a release by someone who is not the holder. Flows catch it with
/// `errors: with: type: https://baton.dev/errors/claim-conflict`.
pub const CLAIM_CONFLICT: &str = "https://baton.dev/errors/claim-conflict";
/// Who releases the claims of an ended instance.
pub const INSTANCE_END: &str = "instance-end";

const PAGE: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimStatus {
    Held,
    Released,
}

impl ClaimStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Held => "held",
            ClaimStatus::Released => "released",
        }
    }
}

/// The holder a claim took over when its lease had run out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakenOver {
    pub holder: String,
    pub token: u64,
    pub expired_at_ms: u64,
}

/// A claim as stored (also once released: the document keeps the last token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub entity: String,
    /// The owner: the flow's `owner`, or its instance.
    pub holder: String,
    /// The instance that holds it, whose end releases it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Who or what for, in words (`dispatcher: backup driver drv-7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The fencing token: one higher for every new holding of the entity.
    pub token: u64,
    /// The idempotency key of the call that last took or renewed it.
    pub key: String,
    pub status: ClaimStatus,
    pub claimed_at_ms: u64,
    pub renewed_at_ms: u64,
    pub expires_at_ms: u64,
    pub lease_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at_ms: Option<u64>,
    /// `holder` or [`INSTANCE_END`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over: Option<TakenOver>,
}

impl Claim {
    /// Held and within its lease.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.status == ClaimStatus::Held && now_ms < self.expires_at_ms
    }

    fn who(&self) -> String {
        match &self.label {
            Some(l) => format!("`{}` ({l})", self.holder),
            None => format!("`{}`", self.holder),
        }
    }
}

/// A claimant waiting for an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimWait {
    /// The call's idempotency key.
    pub key: String,
    pub entity: String,
    pub claimant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub since_ms: u64,
    pub until_ms: u64,
    /// The holder when the wait began.
    pub holder: String,
}

/// What a claimant does when another holds the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    Wait,
    Fail,
    Fallback,
}

/// The checked `with:` of `call: claim`.
#[derive(Debug, Clone)]
pub struct ClaimArgs {
    pub entity: String,
    pub owner: String,
    pub instance: Option<String>,
    pub label: Option<String>,
    pub lease_ms: u64,
    pub on_conflict: OnConflict,
    pub wait_for_ms: u64,
}

/// The checked `with:` of `call: release`.
#[derive(Debug, Clone)]
pub struct ReleaseArgs {
    pub entity: String,
    pub owner: String,
    /// When given, only this holding is released (a holder's later holding is not).
    pub token: Option<u64>,
}

fn keys(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{what}: unknown key `{k}` (expected {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn text(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("`{key}` is empty")),
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            Err(format!("`{key}` holds control characters"))
        }
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

/// The owner: `owner`, else the instance. The runtime does not tell a function which instance
/// calls it, so flows pass `instance: ${ $workflow.id }`; without either there is nobody to
/// hold the claim.
fn owner_of(obj: &Map<String, Value>) -> Result<(String, Option<String>), String> {
    let instance = text(obj, "instance")?;
    match text(obj, "owner")?.or_else(|| instance.clone()) {
        Some(o) => Ok((o, instance)),
        None => {
            Err("a claim needs a holder: pass `instance: ${ $workflow.id }` (or `owner`)".into())
        }
    }
}

impl ClaimArgs {
    pub fn parse(v: &Value) -> Result<ClaimArgs, String> {
        let obj = v
            .as_object()
            .ok_or("`call: claim` takes `with: {entity, instance, lease, on_conflict, …}`")?;
        keys(
            obj,
            &[
                "entity",
                "owner",
                "instance",
                "label",
                "lease",
                "on_conflict",
                "wait_for",
            ],
            "`call: claim`",
        )?;
        let entity = text(obj, "entity")?.ok_or("`entity` is required")?;
        let (owner, instance) = owner_of(obj)?;
        let lease_ms = duration_ms(obj.get("lease").ok_or("`lease` is required")?)
            .map_err(|e| format!("`lease`: {e}"))?;
        if lease_ms == 0 {
            return Err("`lease` must be longer than zero".into());
        }
        let on_conflict = match obj.get("on_conflict").and_then(Value::as_str) {
            Some("wait") => OnConflict::Wait,
            Some("fail") | None => OnConflict::Fail,
            Some("fallback") => OnConflict::Fallback,
            Some(other) => {
                return Err(format!(
                    "`on_conflict` must be `wait`, `fail` or `fallback`, not `{other}`"
                ));
            }
        };
        // A wait is bounded: by default as long as the claimant's own lease would be.
        let wait_for_ms = match obj.get("wait_for") {
            None | Some(Value::Null) => lease_ms,
            Some(w) => duration_ms(w).map_err(|e| format!("`wait_for`: {e}"))?,
        };
        Ok(ClaimArgs {
            entity,
            owner,
            instance,
            label: text(obj, "label")?,
            lease_ms,
            on_conflict,
            wait_for_ms,
        })
    }
}

impl ReleaseArgs {
    pub fn parse(v: &Value) -> Result<ReleaseArgs, String> {
        let obj = v
            .as_object()
            .ok_or("`call: release` takes `with: {entity, instance}`")?;
        keys(
            obj,
            &["entity", "owner", "instance", "token"],
            "`call: release`",
        )?;
        let entity = text(obj, "entity")?.ok_or("`entity` is required")?;
        let (owner, _) = owner_of(obj)?;
        let token = match obj.get("token") {
            None | Some(Value::Null) => None,
            Some(t) => Some(t.as_u64().ok_or("`token` must be a whole number")?),
        };
        Ok(ReleaseArgs {
            entity,
            owner,
            token,
        })
    }
}

/// Why a release was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// Another holder has the entity (or the token given is not the current holding's).
    #[error("{why}")]
    NotHolder { why: String, claim: Box<Claim> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a release did.
#[derive(Debug, Clone, PartialEq)]
pub enum Released {
    /// The holding ended now.
    Released(Claim),
    /// Nothing to release: never claimed, already released, or the owner's lease ran out and
    /// nobody took the entity since (it is marked released all the same).
    NotHeld(Option<Claim>),
}

/// How a claim was won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Won {
    /// A new holding.
    New,
    /// The holder claimed again: the lease is extended, the token kept.
    Renewed,
    /// The same call again (same idempotency key, e.g. after a restart): nothing changed.
    Same,
}

enum Attempt {
    Won(Claim, Won),
    Held(Claim),
}

/// The claims of a store. Cheap to clone.
pub struct Claims<S: DocStore> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
}

impl<S: DocStore> Clone for Claims<S> {
    fn clone(&self) -> Self {
        Claims {
            store: self.store.clone(),
            clock: self.clock.clone(),
        }
    }
}

fn corrupt(id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("claim {id}: {e}"))
}

/// A claim as stored: held claims list by expiry, released ones by when they ended.
fn entry_of(c: &Claim) -> Entry<Claim> {
    Entry::new(
        c.status.as_str(),
        c.released_at_ms.unwrap_or(c.expires_at_ms),
        c.clone(),
    )
}

fn claim_of(doc: &Doc) -> Result<Claim, StoreError> {
    serde_json::from_value(doc.body.clone()).map_err(|e| corrupt(&doc.id, e))
}

fn conflict(title: &str, detail: String) -> Outcome {
    Outcome::failed(Problem::of_type(CLAIM_CONFLICT, 409, title).with_detail(detail))
}

fn held_detail(h: &Claim) -> String {
    format!(
        "`{}` is held by {} (token {}) until {}",
        h.entity,
        h.who(),
        h.token,
        baton_core::time::iso8601_utc(h.expires_at_ms)
    )
}

impl<S: DocStore> Claims<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> Claims<S> {
        Claims { store, clock }
    }

    pub async fn get(&self, entity: &str) -> Result<Option<Claim>, StoreError> {
        match self.store.doc(CLAIM_KIND, entity).await? {
            Some(d) => Ok(Some(claim_of(&d)?)),
            None => Ok(None),
        }
    }

    /// Wakes whenever a claim is taken, renewed or released, or a wait begins or ends, by this
    /// process or another over the same store (for live views).
    pub fn changes(&self) -> DocWatch {
        self.store.watch(&[
            (CLAIM_KIND, KeyRange::All),
            (CLAIM_WAIT_KIND, KeyRange::All),
        ])
    }

    /// Every claim held and within its lease, soonest expiry first: who owns what, for the
    /// dashboard and `baton show`.
    pub async fn holders(&self) -> Result<Vec<Claim>, StoreError> {
        let now = self.clock.now_ms();
        Ok(self
            .held()
            .await?
            .into_iter()
            .filter(|c| c.is_live(now))
            .collect())
    }

    /// Every claim whose status is held, expired leases included.
    async fn held(&self) -> Result<Vec<Claim>, StoreError> {
        let claims: Collection<Claim> = Collection::new(CLAIM_KIND);
        let query = DocQuery {
            status: Some(ClaimStatus::Held.as_str().into()),
            newest_first: false,
            after: None,
            limit: PAGE,
        };
        let mut pages = claims.pages(&*self.store, query);
        let mut out = Vec::new();
        while let Some(page) = pages.next_page().await? {
            out.extend(page.into_iter().map(|c| c.value));
        }
        Ok(out)
    }

    /// Claimants waiting for an entity now (their deadline not passed).
    pub async fn waiting(&self) -> Result<Vec<ClaimWait>, StoreError> {
        let now = self.clock.now_ms();
        let docs = self
            .store
            .docs(CLAIM_WAIT_KIND, &DocQuery::from_time(now, 1000))
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| serde_json::from_value(d.body.clone()).ok())
            .collect())
    }

    /// Takes the entity if it is free, its lease ran out, or this holder renews: a conditional
    /// read-modify-write ([`Collection::update`]), decided again only when another writer changed
    /// the document between the read and the write.
    async fn try_claim(&self, a: &ClaimArgs, key: &str) -> Result<Attempt, StoreError> {
        let claims: Collection<Claim> = Collection::new(CLAIM_KIND);
        claims
            .update(&*self.store, &a.entity, |current| {
                let now = self.clock.now_ms();
                let fresh = |token: u64, took_over: Option<TakenOver>| Claim {
                    entity: a.entity.clone(),
                    holder: a.owner.clone(),
                    instance: a.instance.clone(),
                    label: a.label.clone(),
                    token,
                    key: key.to_string(),
                    status: ClaimStatus::Held,
                    claimed_at_ms: now,
                    renewed_at_ms: now,
                    expires_at_ms: now.saturating_add(a.lease_ms),
                    lease_ms: a.lease_ms,
                    released_at_ms: None,
                    released_by: None,
                    took_over,
                };
                let (next, how) = match current.map(|d| &d.value) {
                    None => (fresh(1, None), Won::New),
                    Some(c) if c.status == ClaimStatus::Held && c.holder == a.owner => {
                        if c.key == key && c.is_live(now) {
                            return Change::Keep(Attempt::Won(c.clone(), Won::Same));
                        }
                        // The same holder without a break (nobody else wrote in between, even
                        // if its lease ran out): the holding goes on under its token.
                        let mut n = c.clone();
                        n.key = key.to_string();
                        n.renewed_at_ms = now;
                        n.expires_at_ms = now.saturating_add(a.lease_ms);
                        n.lease_ms = a.lease_ms;
                        n.label = a.label.clone().or(c.label.clone());
                        n.instance = a.instance.clone().or(c.instance.clone());
                        (n, Won::Renewed)
                    }
                    Some(c) if c.is_live(now) => return Change::Keep(Attempt::Held(c.clone())),
                    Some(c) => {
                        let took_over = (c.status == ClaimStatus::Held).then(|| TakenOver {
                            holder: c.holder.clone(),
                            token: c.token,
                            expired_at_ms: c.expires_at_ms,
                        });
                        (fresh(c.token + 1, took_over), Won::New)
                    }
                };
                Change::Put(entry_of(&next), Attempt::Won(next, how))
            })
            .await
    }

    /// `call: claim`: the flow's answer (`ok` with `claimed`, or the conflict problem).
    pub async fn claim(&self, a: &ClaimArgs, key: &str) -> Result<Outcome, StoreError> {
        // Subscribed before the first read, so a release right after it (by any process over
        // the store) is not missed.
        let mut sub = self
            .store
            .watch(&[(CLAIM_KIND, KeyRange::Exact(a.entity.clone()))]);
        let holder = match self.try_claim(a, key).await? {
            Attempt::Won(c, how) => return Ok(Outcome::ok(won_answer(&c, how, None))),
            Attempt::Held(h) => h,
        };
        match a.on_conflict {
            OnConflict::Fail => Ok(conflict("Claim held by another", held_detail(&holder))),
            OnConflict::Fallback => Ok(Outcome::ok(lost_answer(&holder))),
            OnConflict::Wait => {
                let now = self.clock.now_ms();
                prune_waits(
                    &*self.store,
                    CLAIM_WAIT_KIND,
                    now.saturating_sub(24 * 3_600_000),
                )
                .await?;
                let wait = ClaimWait {
                    key: key.to_string(),
                    entity: a.entity.clone(),
                    claimant: a.owner.clone(),
                    instance: a.instance.clone(),
                    label: a.label.clone(),
                    since_ms: now,
                    until_ms: now.saturating_add(a.wait_for_ms),
                    holder: holder.holder.clone(),
                };
                let body = serde_json::to_value(&wait).unwrap_or(Value::Null);
                let until =
                    open_wait(&*self.store, CLAIM_WAIT_KIND, key, body, wait.until_ms).await?;
                let since = until.saturating_sub(a.wait_for_ms);
                let doc = WaitDoc::new(self.store.clone(), CLAIM_WAIT_KIND, key);
                loop {
                    let h = match self.try_claim(a, key).await? {
                        Attempt::Won(c, how) => {
                            doc.finish().await?;
                            let waited = self.clock.now_ms().saturating_sub(since);
                            return Ok(Outcome::ok(won_answer(&c, how, Some(waited))));
                        }
                        Attempt::Held(h) => h,
                    };
                    let now = self.clock.now_ms();
                    if now >= until {
                        doc.finish().await?;
                        return Ok(conflict(
                            "Claim held by another",
                            format!(
                                "{}; waited {} for it",
                                held_detail(&h),
                                human_ms(until.saturating_sub(since))
                            ),
                        ));
                    }
                    // The holder's lease ending is a moment to try again, as is a release.
                    let wake = until.min(h.expires_at_ms);
                    tokio::select! {
                        r = sub.changed() => r?,
                        _ = self.clock.sleep_until(wake) => {}
                    }
                }
            }
        }
    }

    /// Ends `owner`'s holding of `entity` (only that holding when `token` is given). A release
    /// by anyone else while the entity is held is refused: only the holder releases.
    pub async fn release(
        &self,
        entity: &str,
        owner: &str,
        token: Option<u64>,
        by: &str,
    ) -> Result<Released, ClaimError> {
        let claims: Collection<Claim> = Collection::new(CLAIM_KIND);
        claims
            .update(&*self.store, entity, |current| {
                let now = self.clock.now_ms();
                let Some(c) = current.map(|d| &d.value) else {
                    return Change::Keep(Ok(Released::NotHeld(None)));
                };
                let other_holding = c.holder != owner || token.is_some_and(|t| t != c.token);
                if other_holding {
                    if c.is_live(now) {
                        return Change::Keep(Err(ClaimError::NotHolder {
                            why: format!(
                                "{}, not by `{owner}`{}: only the holder releases",
                                held_detail(c),
                                token.map(|t| format!(" (token {t})")).unwrap_or_default()
                            ),
                            claim: Box::new(c.clone()),
                        }));
                    }
                    return Change::Keep(Ok(Released::NotHeld(Some(c.clone()))));
                }
                if c.status == ClaimStatus::Released {
                    return Change::Keep(Ok(Released::NotHeld(Some(c.clone()))));
                }
                let mut n = c.clone();
                n.status = ClaimStatus::Released;
                n.released_at_ms = Some(now);
                n.released_by = Some(by.to_string());
                Change::Put(entry_of(&n), Ok(Released::Released(n)))
            })
            .await?
    }

    /// Releases every claim the instance holds (expired leases included): called when the
    /// instance completes, faults or is cancelled. Returns the claims released.
    pub async fn release_all_of(&self, instance: &str) -> Result<Vec<Claim>, StoreError> {
        let mut out = Vec::new();
        for c in self.held().await? {
            if c.instance.as_deref() != Some(instance) {
                continue;
            }
            match self
                .release(&c.entity, &c.holder, Some(c.token), INSTANCE_END)
                .await
            {
                Ok(Released::Released(r)) => out.push(r),
                // Taken over or released meanwhile: nothing of this instance's to release.
                Ok(Released::NotHeld(_)) | Err(ClaimError::NotHolder { .. }) => {}
                Err(ClaimError::Store(e)) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn won_answer(c: &Claim, how: Won, waited_ms: Option<u64>) -> Value {
    let mut v = json!({
        "claimed": true,
        "entity": c.entity,
        "token": c.token,
        "holder": c.holder,
        "expires_at": baton_core::time::iso8601_utc(c.expires_at_ms),
        "expires_at_ms": c.expires_at_ms,
        "renewed": how == Won::Renewed,
    });
    if let Some(l) = &c.label {
        v["label"] = json!(l);
    }
    if let Some(t) = &c.took_over {
        v["took_over"] = json!({
            "holder": t.holder,
            "token": t.token,
            "expired_at": baton_core::time::iso8601_utc(t.expired_at_ms),
        });
    }
    if let Some(w) = waited_ms {
        v["waited_ms"] = json!(w);
    }
    v
}

fn lost_answer(h: &Claim) -> Value {
    json!({
        "claimed": false,
        "entity": h.entity,
        "holder": h.holder,
        "holder_label": h.label,
        "token_of_holder": h.token,
        "expires_at": baton_core::time::iso8601_utc(h.expires_at_ms),
        "reason": held_detail(h),
    })
}

fn invalid(title: &str, why: String) -> Outcome {
    Outcome::failed(Problem::new(ErrorKind::Validation, title).with_detail(why))
}

fn store_failure(e: impl std::fmt::Display) -> Outcome {
    Outcome::failed(
        Problem::new(ErrorKind::Runtime, "Claim store failure").with_detail(e.to_string()),
    )
}

/// The `call: claim` function.
pub struct ClaimFunction<S: DocStore> {
    claims: Claims<S>,
}

impl<S: DocStore> ClaimFunction<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> ClaimFunction<S> {
        ClaimFunction {
            claims: Claims::new(store, clock),
        }
    }
}

impl<S: DocStore> Function for ClaimFunction<S> {
    /// Other instances see a claim at once, and a claim may wait: it runs after the barrier.
    fn is_local(&self) -> bool {
        false
    }

    /// The claim's owner defaults to the calling instance, so flows need not pass `instance:`.
    fn invoke(&self, call: Call<'_>, args: Value) -> FunctionResult {
        baton_api::call_as_instance(call, args, "Invalid claim arguments", |args| {
            self.run(args, call.idempotency_key)
        })
    }
}

impl<S: DocStore> ClaimFunction<S> {
    fn run(&self, args: Value, idempotency_key: &str) -> FunctionResult {
        let claims = self.claims.clone();
        let key = idempotency_key.to_string();
        Box::pin(async move {
            let args = match ClaimArgs::parse(&args) {
                Ok(a) => a,
                Err(why) => return invalid("Invalid claim arguments", why),
            };
            claims
                .claim(&args, &key)
                .await
                .unwrap_or_else(store_failure)
        })
    }
}

/// The `call: release` function.
pub struct ReleaseFunction<S: DocStore> {
    claims: Claims<S>,
}

impl<S: DocStore> ReleaseFunction<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> ReleaseFunction<S> {
        ReleaseFunction {
            claims: Claims::new(store, clock),
        }
    }
}

impl<S: DocStore> Function for ReleaseFunction<S> {
    fn is_local(&self) -> bool {
        false
    }

    /// The claim's owner defaults to the calling instance, so flows need not pass `instance:`.
    fn invoke(&self, call: Call<'_>, args: Value) -> FunctionResult {
        baton_api::call_as_instance(call, args, "Invalid claim arguments", |args| {
            self.run(args, call.idempotency_key)
        })
    }
}

impl<S: DocStore> ReleaseFunction<S> {
    fn run(&self, args: Value, _key: &str) -> FunctionResult {
        let claims = self.claims.clone();
        Box::pin(async move {
            let a = match ReleaseArgs::parse(&args) {
                Ok(a) => a,
                Err(why) => return invalid("Invalid release arguments", why),
            };
            match claims.release(&a.entity, &a.owner, a.token, "holder").await {
                Ok(Released::Released(c)) => Outcome::ok(json!({
                    "released": true,
                    "entity": c.entity,
                    "token": c.token,
                    "holder": c.holder,
                })),
                Ok(Released::NotHeld(c)) => Outcome::ok(json!({
                    "released": false,
                    "entity": a.entity,
                    "reason": match &c {
                        None => "never claimed".to_string(),
                        Some(c) if c.status == ClaimStatus::Released => format!(
                            "already released (token {}) at {}",
                            c.token,
                            baton_core::time::iso8601_utc(c.released_at_ms.unwrap_or(0))
                        ),
                        Some(c) => format!(
                            "not held by `{}`: the lease of {} (token {}) ended at {}",
                            a.owner,
                            c.who(),
                            c.token,
                            baton_core::time::iso8601_utc(c.expires_at_ms)
                        ),
                    },
                })),
                Err(ClaimError::NotHolder { why, .. }) => conflict("Not the claim's holder", why),
                Err(ClaimError::Store(e)) => store_failure(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_needs_a_holder_and_a_lease() {
        assert!(ClaimArgs::parse(&json!({"entity": "slot", "lease": "5m"})).is_err());
        assert!(ClaimArgs::parse(&json!({"entity": "slot", "instance": "i-1"})).is_err());
        assert!(
            ClaimArgs::parse(&json!({"entity": "slot", "instance": "i-1", "lease": "0s"})).is_err()
        );
        assert!(
            ClaimArgs::parse(
                &json!({"entity": "slot", "instance": "i-1", "lease": "5m", "on_conflict": "maybe"})
            )
            .is_err()
        );
        let a = ClaimArgs::parse(
            &json!({"entity": "addr-19/10:00", "instance": "i-1", "lease": "5m", "on_conflict": "wait"}),
        )
        .expect("valid");
        assert_eq!(a.owner, "i-1", "the owner defaults to the instance");
        assert_eq!(a.wait_for_ms, 5 * 60_000, "a wait is bounded by default");
        let r = ReleaseArgs::parse(&json!({"entity": "x", "owner": "dispatcher", "token": 3}))
            .expect("valid");
        assert_eq!((r.owner.as_str(), r.token), ("dispatcher", Some(3)));
    }
}
