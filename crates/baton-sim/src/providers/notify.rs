//! `notify`: messages to driver tablets and customers. A message is queued (`202`); a repeated
//! `Idempotency-Key` answers the first message (`200`) and sends nothing. The causation id a
//! message was sent with (`X-Baton-Causation-Id`) is kept with it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Map, Value, json};

use super::lock;
use crate::Shared;
use crate::http::{body, causation_id, idempotency_key, problem, reply};

struct Message {
    id: String,
    key: String,
    to: String,
    causation_id: Option<String>,
    sent_ms: i64,
    request: Map<String, Value>,
}

#[derive(Default)]
pub(crate) struct State {
    inner: Mutex<Messages>,
}

#[derive(Default)]
struct Messages {
    list: Vec<Message>,
    keys: HashSet<String>,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/messages", post(send).get(list))
}

fn message_json(s: &Shared, m: &Message) -> Value {
    json!({
        "message_id": m.id,
        "key": m.key,
        "to": m.to,
        "status": "queued",
        "causation_id": m.causation_id,
        "sent_at": s.clock.format(m.sent_ms),
        "request": m.request,
    })
}

async fn send(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap, bytes: Bytes) -> Response {
    let request: Map<String, Value> = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some(to) = request
        .get("to")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Missing 'to'",
            "a message needs 'to': a driver (d-07), a customer or a phone number",
        );
    };
    let now = s.clock.now_ms();
    let (key, fresh, answer) = {
        let mut msgs = lock(&s.live.notify.inner);
        let id = format!("m-{}", msgs.list.len() + 1);
        let key = idempotency_key(&headers).unwrap_or_else(|| id.clone());
        if msgs.keys.contains(&key) {
            let first = msgs.list.iter().find(|m| m.key == key);
            let answer = first.map(|m| message_json(&s, m)).unwrap_or(Value::Null);
            (key, false, answer)
        } else {
            let m = Message {
                id,
                key: key.clone(),
                to,
                causation_id: causation_id(&headers),
                sent_ms: now,
                request,
            };
            let answer = message_json(&s, &m);
            msgs.keys.insert(key.clone());
            msgs.list.push(m);
            (key, true, answer)
        }
    };
    s.record_request("notify", &key, fresh);
    let status = if fresh {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    reply(status, answer)
}

async fn list(
    AxState(s): AxState<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let msgs = lock(&s.live.notify.inner);
    let messages: Vec<Value> = msgs
        .list
        .iter()
        .filter(|m| q.get("to").is_none_or(|to| *to == m.to))
        .map(|m| message_json(&s, m))
        .collect();
    reply(
        StatusCode::OK,
        json!({ "as_of": s.clock.now_rfc3339(), "messages": messages }),
    )
}
