//! The HTTP API end to end, over a real socket and a SQLite store on disk: authentication and
//! roles, idempotent starts, versioned flows, problem details, approvals with identity, the
//! audit trail, events and metrics.

mod common;

use common::Server;
use serde_json::{Value, json};

const CONFIG: &str = "
tokens:
  - { name: olu, token: t-operator, roles: [operator] }
  - { name: dana, token: t-dispatcher, roles: [approver], groups: [dispatchers] }
  - { name: sam, token: t-other-approver, roles: [approver], groups: [finance] }
  - { name: vic, token: t-viewer, roles: [viewer] }
";

const APPROVAL_FLOW: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: needs-ok, version: '1.0.0' }
do:
  - ask:
      call: approval
      with:
        title: Reroute order ord-1
        instance: ${ $workflow.id }
        assignees: [ 'group:dispatchers' ]
        data: { action: reroute, driver: drv-17 }
        window: PT2H
        due: { fixed: PT30M }
  - done:
      set: { approved: '${ .approved }', by: '${ .by }' }
"#;

async fn server() -> Server {
    common::start(CONFIG, true, reqwest::Client::builder()).await
}

impl Server {
    /// An API call, with a token or none: the status, the answer and its content type.
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ct,
        )
    }

    async fn register(&self, source: &str) -> (u16, Value) {
        let (s, v, _) = self
            .request(
                "POST",
                "/v1/flows",
                Some("t-operator"),
                Some(json!({"source": source})),
            )
            .await;
        (s, v)
    }

    /// Polls `path` until `done` holds for its body (bounded; the instance runs on its own).
    async fn until(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..5_000 {
            let (_, v, _) = self.request("GET", path, Some(token), None).await;
            if done(&v) {
                return v;
            }
            tokio::task::yield_now().await;
        }
        panic!("{path} never reached the expected state");
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_get_a_401_problem() {
    let s = server().await;
    let (status, body, ct) = s.request("GET", "/v1/instances", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["code"], "BATON-API-001");
    assert_eq!(body["type"], "https://baton.dev/errors/unauthenticated");
    let (status, _, _) = s.request("GET", "/v1/instances", Some("wrong"), None).await;
    assert_eq!(status, 401);
    let (status, body, _) = s
        .request("GET", "/v1/nothing-here", Some("t-viewer"), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("BATON-API-003"))
    );
}

#[tokio::test]
async fn flows_are_versioned_and_invalid_ones_are_explained_with_line_and_column() {
    let s = server().await;
    let v1 = "document: {dsl: '1.0.3', namespace: t, name: f, version: '1.0.0'}\ndo:\n  - a: {set: {v: 1}}\n";
    let v1b = "document: {dsl: '1.0.3', namespace: t, name: f, version: '1.0.0'}\ndo:\n  - a: {set: {v: 99}}\n";
    let v2 = "document: {dsl: '1.0.3', namespace: t, name: f, version: '1.1.0'}\ndo:\n  - a: {set: {v: 2}}\n";
    assert_eq!(s.register(v1).await.0, 201);
    assert_eq!(
        s.register(v1).await.0,
        200,
        "same content again is no change"
    );
    let (status, body) = s.register(v1b).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("BATON-API-005")),
        "{body}"
    );
    assert_eq!(s.register(v2).await.0, 201);

    let (_, flows, _) = s.request("GET", "/v1/flows", Some("t-viewer"), None).await;
    let latest: Vec<&str> = flows
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["latest"] == true)
        .map(|f| f["version"].as_str().unwrap())
        .collect();
    assert_eq!(latest, ["1.1.0"]);

    // A start without a version takes the latest; the old version can still be named.
    let (_, started, _) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-operator"),
            Some(json!({"flow": "f"})),
        )
        .await;
    assert_eq!(started["flow"]["version"], "1.1.0");
    let (_, old, _) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-operator"),
            Some(json!({"flow": "f", "version": "1.0.0"})),
        )
        .await;
    assert_eq!(old["flow"]["version"], "1.0.0");

    let bad = "document: {dsl: '1.0.3', namespace: t, name: g, version: '1.0.0'}\ndo:\n  - a: {call: nosuchfn}\n";
    let (status, body) = s.register(bad).await;
    assert_eq!(status, 422, "{body}");
    let first = &body["errors"][0];
    assert_eq!(first["line"], 3, "{body}");
    assert!(first["column"].as_u64().unwrap() > 0);
    assert!(first["code"].as_str().unwrap().starts_with("BATON-FLOW-"));
}

/// Issue 14: a start whose input breaks the flow's input schema is refused with the reasons
/// (400, one error per offending value with its JSON Pointer), and no instance is started.
#[tokio::test]
async fn a_start_with_an_input_that_breaks_the_schema_is_refused_with_the_reasons() {
    let s = server().await;
    let flow = r#"document: {dsl: '1.0.3', namespace: t, name: delay, version: '1.0.0'}
input:
  schema:
    format: json
    document:
      type: object
      required: [order, minutes]
      properties:
        order: {type: string}
        minutes: {type: number, minimum: 0}
do:
  - a: {set: {late: '${ .minutes >= 10 }'}}
"#;
    assert_eq!(s.register(flow).await.0, 201);
    let (status, body, ct) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-operator"),
            Some(json!({"flow": "delay", "input": {"order": "o-1", "minutes": "N/A"}})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BATON-API-004")),
        "{body}"
    );
    assert_eq!(ct, "application/problem+json");
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(pointers, ["/minutes"], "{body}");
    let (status, body, _) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-operator"),
            Some(json!({"flow": "delay", "input": {}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["pointer"], "",
        "a missing field is the input's: {body}"
    );
    let (_, list, _) = s
        .request("GET", "/v1/instances?flow=delay", Some("t-viewer"), None)
        .await;
    assert_eq!(list["items"], json!([]), "nothing started: {list}");
    let (status, ok, _) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-operator"),
            Some(json!({"flow": "delay", "input": {"order": "o-1", "minutes": 12}})),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
}

#[tokio::test]
async fn starts_need_an_operator_and_an_idempotency_key_starts_once() {
    let s = server().await;
    s.register(
        "document: {dsl: '1.0.3', namespace: t, name: echo, version: '1.0.0'}\ndo:\n  - a: {set: '${ . }'}\n",
    )
    .await;
    let (status, body, _) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-viewer"),
            Some(json!({"flow": "echo"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("BATON-API-002"))
    );

    let start = |key: &'static str, input: Value| {
        let s = &s;
        async move {
            let resp = s
                .http
                .post(format!("{}/v1/instances", s.base))
                .bearer_auth("t-operator")
                .header("Idempotency-Key", key)
                .json(&json!({"flow": "echo", "input": input}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (s1, a) = start("order-77", json!({"n": 1})).await;
    let (s2, b) = start("order-77", json!({"n": 1})).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(a["id"], b["id"], "a retry returns the same instance");
    let (s3, c) = start("order-77", json!({"n": 2})).await;
    assert_eq!((s3, c["code"].as_str()), (422, Some("BATON-API-008")));

    let (_, page, _) = s
        .request("GET", "/v1/instances?flow=echo", Some("t-viewer"), None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn pages_follow_the_cursor_and_bad_parameters_are_problems() {
    let s = server().await;
    s.register(
        "document: {dsl: '1.0.3', namespace: t, name: n, version: '1.0.0'}\ndo:\n  - a: {set: {x: 1}}\n",
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (_, v, _) = s
            .request(
                "POST",
                "/v1/instances",
                Some("t-operator"),
                Some(json!({"flow": "n"})),
            )
            .await;
        ids.push(
            v["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{v}"))
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/v1/instances?limit=2&cursor={c}"),
            None => "/v1/instances?limit=2".into(),
        };
        let (_, page, _) = s.request("GET", &path, Some("t-viewer"), None).await;
        for it in page["items"].as_array().unwrap_or_else(|| panic!("{page}")) {
            seen.push(it["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");

    let (status, body, ct) = s
        .request("GET", "/v1/instances?limit=abc", Some("t-viewer"), None)
        .await;
    assert_eq!(
        (status, ct.as_str()),
        (400, "application/problem+json"),
        "{body}"
    );
    let (status, _, _) = s
        .request("GET", "/v1/instances?status=asleep", Some("t-viewer"), None)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_viewer_cannot_approve_and_an_approvers_decision_is_recorded_with_identity() {
    let s = server().await;
    assert_eq!(s.register(APPROVAL_FLOW).await.0, 201);
    let (_, inst, _) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-operator"),
            Some(json!({"flow": "needs-ok"})),
        )
        .await;
    let id = inst["id"].as_str().unwrap().to_string();

    let page = s
        .until("/v1/approvals?mine=true", "t-dispatcher", |p| {
            p["items"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let task_id = page["items"][0]["id"].as_str().unwrap().to_string();

    let (status, body, _) = s
        .request(
            "POST",
            &format!("/v1/approvals/{task_id}/approve"),
            Some("t-viewer"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("BATON-API-002"))
    );
    let (status, _, _) = s
        .request(
            "POST",
            &format!("/v1/approvals/{task_id}/approve"),
            Some("t-other-approver"),
            None,
        )
        .await;
    assert_eq!(
        status, 403,
        "an approver outside the assigned group cannot answer"
    );
    let (status, _, _) = s
        .request(
            "POST",
            &format!("/v1/approvals/{task_id}/reject"),
            Some("t-dispatcher"),
            Some(json!({})),
        )
        .await;
    assert!(
        status == 400 || status == 422,
        "a rejection needs a reason ({status})"
    );

    let (status, answered, _) = s
        .request(
            "POST",
            &format!("/v1/approvals/{task_id}/approve"),
            Some("t-dispatcher"),
            Some(json!({"reason": "driver confirmed"})),
        )
        .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["decided_by"], "dana");
    let (status, _, _) = s
        .request(
            "POST",
            &format!("/v1/approvals/{task_id}/approve"),
            Some("t-dispatcher"),
            None,
        )
        .await;
    assert_eq!(status, 409, "a task is answered once");

    // The instance completes with the answer, and the audit trail says who.
    let detail = s
        .until(&format!("/v1/instances/{id}"), "t-viewer", |d| {
            d["instance"]["status"] == "completed"
        })
        .await;
    assert_eq!(
        detail["instance"]["output"],
        json!({"approved": true, "by": "dana"}),
        "{detail}"
    );
    let (_, audit, _) = s
        .request(
            "GET",
            "/v1/audit?action=approval.approve",
            Some("t-viewer"),
            None,
        )
        .await;
    let rec = &audit["items"][0];
    assert_eq!(
        (rec["actor"].as_str(), rec["target"].as_str()),
        (Some("dana"), Some(task_id.as_str()))
    );
    assert_eq!(rec["detail"]["reason"], "driver confirmed");
}

#[tokio::test]
async fn cancel_records_who_and_metrics_count_instances() {
    let s = server().await;
    s.register(
        "document: {dsl: '1.0.3', namespace: t, name: sleepy, version: '1.0.0'}\ndo:\n  - w: {wait: {hours: 1}}\n",
    )
    .await;
    let (_, inst, _) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-operator"),
            Some(json!({"flow": "sleepy"})),
        )
        .await;
    let id = inst["id"].as_str().unwrap();
    let (status, _, _) = s
        .request(
            "POST",
            &format!("/v1/instances/{id}/cancel"),
            Some("t-viewer"),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body, _) = s
        .request(
            "POST",
            &format!("/v1/instances/{id}/cancel"),
            Some("t-operator"),
            Some(json!({"reason": "customer called"})),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let (status, body, _) = s
        .request(
            "POST",
            &format!("/v1/instances/{id}/cancel"),
            Some("t-operator"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("BATON-API-005"))
    );
    let (_, detail, _) = s
        .request(
            "GET",
            &format!("/v1/instances/{id}"),
            Some("t-viewer"),
            None,
        )
        .await;
    let cancel = detail["journal"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "cancel_requested")
        .unwrap();
    assert_eq!(cancel["by"], "olu");

    let (status, text, ct) = s.request("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain"));
    assert!(
        text.as_str()
            .unwrap()
            .contains("baton_instances{status=\"cancelled\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let s = server().await;
    let (status, doc, _) = s.request("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/v1/instances",
        "/v1/instances/{id}/cancel",
        "/v1/events",
        "/v1/approvals/{id}/approve",
        "/v1/flows",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
}

#[tokio::test]
async fn a_duplicate_event_is_deduplicated_and_an_invalid_one_is_quarantined_with_its_reason() {
    let s = server().await;
    let event = json!({"specversion": "1.0", "id": "e-1", "source": "maplewood/gps", "type": "maplewood.eta.changed", "data": {"truck": "t-7"}});
    let (status, first, _) = s
        .request(
            "POST",
            "/v1/events",
            Some("t-operator"),
            Some(event.clone()),
        )
        .await;
    assert_eq!(status, 202, "{first}");
    assert_ne!(first["outcome"], "duplicate");
    let (_, again, _) = s
        .request(
            "POST",
            "/v1/events",
            Some("t-operator"),
            Some(event.clone()),
        )
        .await;
    assert_eq!(again["outcome"], "duplicate");
    // Issue 14: the same identity with other data is not a duplicate: it is a conflict, kept
    // in the quarantine beside the first, never dropped.
    let mut other = event.clone();
    other["data"] = json!({"truck": "t-9"});
    let (status, conflict, _) = s
        .request("POST", "/v1/events", Some("t-operator"), Some(other))
        .await;
    assert_eq!(
        (status, conflict["outcome"].as_str()),
        (202, Some("quarantined")),
        "{conflict}"
    );
    assert!(
        conflict["reason"]
            .as_str()
            .unwrap()
            .starts_with("conflict:"),
        "{conflict}"
    );
    let cid = conflict["quarantine_id"].as_str().unwrap();
    let (_, held, _) = s
        .request("GET", "/v1/quarantine", Some("t-viewer"), None)
        .await;
    let kept = held["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == cid)
        .expect("the conflict is held");
    assert_eq!(kept["raw"]["data"]["truck"], "t-9", "{kept}");
    assert_eq!(kept["first"]["data"]["truck"], "t-7", "{kept}");

    let bad = json!({"specversion": "1.0", "id": "e-2", "source": "maplewood/gps", "data": {}});
    let (status, q, _) = s
        .request("POST", "/v1/events", Some("t-operator"), Some(bad))
        .await;
    assert_eq!(
        (status, q["outcome"].as_str()),
        (202, Some("quarantined")),
        "{q}"
    );
    assert!(q["reason"].as_str().unwrap().contains("type"), "{q}");
    let qid = q["quarantine_id"].as_str().unwrap().to_string();

    let (_, list, _) = s
        .request("GET", "/v1/quarantine", Some("t-viewer"), None)
        .await;
    let held = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == qid.as_str())
        .expect("the invalid event is held");
    assert!(held["reason"].as_str().unwrap().contains("type"));
    assert_eq!(held["raw"]["id"], "e-2", "the body is kept as received");

    let fixed = json!({"specversion": "1.0", "id": "e-2", "source": "maplewood/gps", "type": "maplewood.eta.changed", "data": {}});
    let (status, _, _) = s
        .request(
            "POST",
            &format!("/v1/quarantine/{qid}/replay"),
            Some("t-viewer"),
            Some(json!({"corrected": fixed})),
        )
        .await;
    assert_eq!(status, 403, "a viewer cannot replay");
    let (status, replayed, _) = s
        .request(
            "POST",
            &format!("/v1/quarantine/{qid}/replay"),
            Some("t-operator"),
            Some(json!({"corrected": fixed})),
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert_ne!(replayed["outcome"], "quarantined");
    // The OpenAPI document names every field of a quarantined event, held and replayed.
    let (_, doc, _) = s.request("GET", "/openapi.json", None, None).await;
    common::assert_named_by(&doc, "QuarantinePage", &list);
    let (_, after, _) = s
        .request("GET", "/v1/quarantine", Some("t-viewer"), None)
        .await;
    let replayed_one = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == qid.as_str())
        .unwrap();
    assert_eq!(replayed_one["status"], "replayed", "{after}");
    common::assert_named_by(&doc, "QuarantinePage", &after);

    let (_, metrics, _) = s.request("GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("baton_events_total{outcome=\"duplicate\"} 1"),
        "{text}"
    );
    // The conflict and the invalid event.
    assert!(
        text.contains("baton_events_total{outcome=\"quarantined\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn cancelling_compensates_and_the_metric_counts_it() {
    let s = server().await;
    s.register(
        r#"
document: {dsl: '1.0.3', namespace: t, name: undoable, version: '1.0.0'}
do:
  - hold:
      call: noop
      with: {held: true}
      metadata:
        baton:
          compensate: {call: noop, with: {released: '${ $effect.output.held }'}}
  - w: {wait: {hours: 1}}
"#,
    )
    .await;
    let (_, inst, _) = s
        .request(
            "POST",
            "/v1/instances",
            Some("t-operator"),
            Some(json!({"flow": "undoable"})),
        )
        .await;
    let id = inst["id"].as_str().unwrap();
    // The undo is a local function: it runs before the cancel is answered.
    let (status, body, _) = s
        .request(
            "POST",
            &format!("/v1/instances/{id}/cancel"),
            Some("t-operator"),
            Some(json!({"reason": "customer called"})),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let (_, detail, _) = s
        .request(
            "GET",
            &format!("/v1/instances/{id}"),
            Some("t-viewer"),
            None,
        )
        .await;
    let journal = detail["journal"].as_array().unwrap();
    let undo = journal
        .iter()
        .find(|e| e["key"] == "/do/0/hold/compensate[0]#call")
        .expect("the undo is journaled");
    assert_eq!(undo["value"], json!({"released": true}), "{undo}");
    assert!(
        journal
            .iter()
            .any(|e| e["type"] == "task_note" && e["note"]["compensation"] == "compensated"),
        "{detail}"
    );
    let (_, text, _) = s.request("GET", "/metrics", None, None).await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("baton_compensations_total{outcome=\"compensated\"} 1"),
        "{text}"
    );
}
