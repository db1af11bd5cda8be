//! Governed overrides and decision records over the API and on the dashboard, in process over a
//! real socket: an override rule declared by the flow itself (no server rule), a server rule that
//! forbids overrides, the second approver confirming from the dashboard's inbox form, the
//! instance page's decision records, the overrides page, the export's period filter and the
//! OpenAPI document.

mod common;

use common::Server;
use serde_json::{Value, json};

const CONFIG: &str = "
tokens:
  - { name: olu, token: t-operator, roles: [operator] }
  - { name: dana, token: t-dispatcher, roles: [approver], groups: [dispatchers] }
  - { name: rhea, token: t-director, roles: [approver], groups: [directors] }
  - { name: finn, token: t-fleet, roles: [approver], groups: [fleet-managers] }
  - { name: vic, token: t-viewer, roles: [viewer] }
overrides:
  - { flow: test/refund, decision: '*', forbidden: true }
";

/// The flow itself says who may override and who confirms; the server has no rule for it.
const ROUTE_FLOW: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: route, version: '1.0.0' }
do:
  - ask:
      call: approval
      with:
        title: Route for drv-07
        decision: route
        instance: ${ $workflow.id }
        # A flow's own `allow` narrows among the assignees: the directors must be assignees.
        assignees: [ 'group:dispatchers', 'group:directors' ]
        data: { stops: [ a, b, c ] }
        window: PT2H
        override: { allow: [ 'group:directors' ], second_approver: [ 'group:fleet-managers' ] }
        cost: /cost
  - done:
      set:
        stops: '${ .output.stops }'
        cost: '${ if .verdict == "overridden" then {summary: "b and c later by one stop"} else null end }'
"#;

const REFUND_FLOW: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: refund, version: '1.0.0' }
do:
  - ask:
      call: approval
      with:
        title: Refund ord-9
        instance: ${ $workflow.id }
        assignees: [ 'group:dispatchers' ]
        data: { amount: 120 }
        window: PT2H
"#;

async fn server() -> Server {
    common::start(CONFIG, true, reqwest::Client::builder()).await
}

impl Server {
    /// A dashboard page or form post as a signed-in browser on this server's pages.
    async fn page(
        &self,
        method: &str,
        path: &str,
        token: &str,
        form: Option<Vec<(&str, String)>>,
    ) -> (u16, String) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("cookie", format!("baton_token={token}"))
            .header("origin", self.base.clone());
        if let Some(f) = form {
            let body: Vec<String> = f
                .into_iter()
                .map(|(k, v)| format!("{k}={}", common::urlencode(&v)))
                .collect();
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.join("&"));
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn start(&self, source: &str, flow: &str) -> (String, Value) {
        let (s, v) = self
            .call(
                "POST",
                "/v1/flows",
                "t-operator",
                Some(json!({"source": source})),
            )
            .await;
        assert!(s == 201 || s == 200, "{v}");
        let (s, v) = self
            .call(
                "POST",
                "/v1/instances",
                "t-operator",
                Some(json!({"flow": flow})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let task = self
            .until(&format!("/v1/approvals?instance={id}"), |v| {
                v["items"].as_array().is_some_and(|a| !a.is_empty())
            })
            .await["items"][0]
            .clone();
        (id, task)
    }

    /// Polls a GET until `done` holds (bounded: the server works on its own).
    async fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..5_000 {
            let (_, v) = self.call("GET", path, "t-viewer", None).await;
            if done(&v) {
                return v;
            }
            tokio::task::yield_now().await;
        }
        panic!("{path} never reached the expected state");
    }
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="_csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + r#"name="_csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_declared_override_is_confirmed_in_the_dashboard_and_reported() {
    let s = server().await;
    let (id, task) = s.start(ROUTE_FLOW, "route").await;
    let task_id = task["id"].as_str().unwrap().to_string();
    assert_eq!(
        task["override"]["second_approver"],
        json!(["group:fleet-managers"])
    );

    // The flow's rule alone: the assigned dispatcher may not override, the director may.
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/approvals/{task_id}/override"),
            "t-dispatcher",
            Some(json!({"output": {"stops": ["c", "a", "b"]}, "reason": "c first"})),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("BATON-API-014")),
        "{v}"
    );
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/approvals/{task_id}/override"),
            "t-director",
            Some(json!({"output": {"stops": ["c", "a", "b"]}, "reason": "c is the mayor"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");

    // The fleet manager sees it in the inbox and confirms it there.
    let (st, inbox) = s.page("GET", "/ui/approvals", "t-fleet", None).await;
    assert_eq!(st, 200);
    assert!(
        inbox.contains("Override waiting for a second approver"),
        "{inbox}"
    );
    assert!(inbox.contains("c is the mayor") && inbox.contains("Confirm override"));
    // The director who asked is not offered the confirmation.
    let (_, own) = s.page("GET", "/ui/approvals", "t-director", None).await;
    assert!(own.contains("Override waiting") && !own.contains("Confirm override"));
    let form = vec![
        ("_csrf", csrf_of(&inbox)),
        ("action", "confirm".to_string()),
        ("reason", "agreed".to_string()),
    ];
    let (st, body) = s
        .page(
            "POST",
            &format!("/ui/approvals/{task_id}"),
            "t-fleet",
            Some(form),
        )
        .await;
    assert!(st == 200 || st == 303, "{st} {body}");
    let done = s
        .until(&format!("/v1/instances/{id}"), |v| {
            v["instance"]["status"] == "completed"
        })
        .await;
    assert_eq!(done["instance"]["output"]["stops"], json!(["c", "a", "b"]));

    // The audit trail has the request and the confirmation, in that order (newest first).
    let (_, audit) = s.call("GET", "/v1/audit", "t-viewer", None).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    let confirm = actions
        .iter()
        .position(|a| *a == "approval.override")
        .expect("confirm audited");
    let asked = actions
        .iter()
        .position(|a| *a == "approval.override.requested")
        .expect("request audited");
    assert!(confirm < asked, "{actions:?}");
    // `/v1/overrides` lists the override in effect, by the second approver, naming who asked.
    let (_, listed) = s.call("GET", "/v1/overrides", "t-viewer", None).await;
    let entry = &listed["items"][0];
    assert_eq!(entry["actor"], json!("finn"));
    assert_eq!(entry["detail"]["asked_by"], json!("rhea"));
    assert_eq!(entry["detail"]["reason"], json!("c is the mayor"));

    // The instance page shows the record: original, replacement, who and why, the cost.
    let (_, page) = s
        .page("GET", &format!("/ui/instances/{id}"), "t-viewer", None)
        .await;
    assert!(page.contains("Decision records"), "{page}");
    assert!(page.contains("overridden by rhea") && page.contains("confirmed by finn"));
    assert!(page.contains("b and c later by one stop"));
    // And the overrides page lists it with its cost.
    let (st, report) = s.page("GET", "/ui/overrides", "t-viewer", None).await;
    assert_eq!(st, 200);
    assert!(
        report.contains("c is the mayor") && report.contains("b and c later by one stop"),
        "{report}"
    );
    assert!(report.contains("confirmed by finn"));
    let (st, bad) = s
        .page("GET", "/ui/overrides?since=whenever", "t-viewer", None)
        .await;
    assert_eq!(st, 200);
    assert!(bad.contains("is not a time"), "{bad}");

    // The export keeps to its period.
    let resp = s
        .http
        .get(format!("{}/v1/decisions?since=0&until=1000", s.base))
        .bearer_auth("t-viewer")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    let (_, all) = s
        .call(
            "GET",
            &format!("/v1/instances/{id}/decisions"),
            "t-viewer",
            None,
        )
        .await;
    assert_eq!(
        all["items"][0]["override"]["reason"],
        json!("c is the mayor")
    );
    let (st, v) = s
        .call("GET", "/v1/instances/nope/decisions", "t-viewer", None)
        .await;
    assert_eq!((st, v["code"].as_str()), (404, Some("BATON-API-003")));

    // The OpenAPI document describes the new operations.
    let (_, doc) = s.call("GET", "/openapi.json", "t-viewer", None).await;
    for p in [
        "/v1/approvals/{id}/override/confirm",
        "/v1/approvals/{id}/override/refuse",
        "/v1/overrides/report",
        "/v1/instances/{id}/decisions",
        "/v1/decisions",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from the OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_rule_forbids_overriding_refunds() {
    let s = server().await;
    let (_, task) = s.start(REFUND_FLOW, "refund").await;
    let task_id = task["id"].as_str().unwrap();
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/approvals/{task_id}/override"),
            "t-dispatcher",
            Some(json!({"output": {"amount": 500}, "reason": "goodwill"})),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("BATON-API-014")),
        "{v}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("may not be overridden"),
        "{v}"
    );
    // Approving stays possible; the refusal changed nothing.
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/approvals/{task_id}/approve"),
            "t-dispatcher",
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, report) = s
        .call("GET", "/v1/overrides/report", "t-viewer", None)
        .await;
    assert_eq!(report["total"], json!(0), "{report}");
}

/// No rule for it: an assignee may override, with a reason.
const PLAIN_FLOW: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: plain, version: '1.0.0' }
do:
  - ask:
      call: approval
      with:
        title: Slot for ord-3
        instance: ${ $workflow.id }
        assignees: [ 'group:dispatchers' ]
        data: { slot: 9 }
        window: PT2H
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_override_needs_a_reason_and_is_listed_as_an_override() {
    let s = server().await;
    let (id, task) = s.start(PLAIN_FLOW, "plain").await;
    let task_id = task["id"].as_str().unwrap().to_string();
    let (_, inbox) = s.page("GET", "/ui/approvals", "t-dispatcher", None).await;
    let form = |reason: &str| {
        vec![
            ("_csrf", csrf_of(&inbox)),
            ("action", "override".to_string()),
            ("output", r#"{"slot": 11}"#.to_string()),
            ("reason", reason.to_string()),
        ]
    };
    // Without a reason the override is refused, as over the API; the task stays open.
    let (st, body) = s
        .page(
            "POST",
            &format!("/ui/approvals/{task_id}"),
            "t-dispatcher",
            Some(form("  ")),
        )
        .await;
    assert_eq!(st, 422, "{body}");
    assert!(body.contains("reason"), "{body}");
    let (_, t) = s
        .call("GET", &format!("/v1/approvals/{task_id}"), "t-viewer", None)
        .await;
    assert_eq!(t["status"], json!("open"), "{t}");
    // With one it takes effect and `/v1/overrides` lists it, like an override over the API.
    let (st, body) = s
        .page(
            "POST",
            &format!("/ui/approvals/{task_id}"),
            "t-dispatcher",
            Some(form("the customer asked for 11")),
        )
        .await;
    assert!(st == 200 || st == 303, "{st} {body}");
    s.until(&format!("/v1/instances/{id}"), |v| {
        v["instance"]["status"] == "completed"
    })
    .await;
    let (_, listed) = s.call("GET", "/v1/overrides", "t-viewer", None).await;
    let entry = &listed["items"][0];
    assert_eq!(entry["actor"], json!("dana"), "{listed}");
    assert_eq!(
        entry["detail"]["reason"],
        json!("the customer asked for 11")
    );
}

/// Issue 16: the OpenAPI document names every field of an approval task, at every stage of an
/// override (open, waiting for its second approver, refused, confirmed), in the inbox list too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_names_every_field_of_an_approval_task() {
    let s = server().await;
    let (_, doc) = s.call("GET", "/openapi.json", "t-viewer", None).await;
    let (_, task) = s.start(ROUTE_FLOW, "route").await;
    let task_id = task["id"].as_str().unwrap().to_string();
    let get = || async {
        let (st, t) = s
            .call("GET", &format!("/v1/approvals/{task_id}"), "t-viewer", None)
            .await;
        assert_eq!(st, 200, "{t}");
        t
    };
    common::assert_named_by(&doc, "ApprovalTask", &get().await);

    let ask =
        |reason: &'static str| json!({"output": {"stops": ["c", "a", "b"]}, "reason": reason});
    let over = format!("/v1/approvals/{task_id}/override");
    let (st, v) = s
        .call("POST", &over, "t-director", Some(ask("c first")))
        .await;
    assert_eq!(st, 202, "{v}");
    let pending = get().await;
    assert!(pending["pending_override"].is_object(), "{pending}");
    common::assert_named_by(&doc, "ApprovalTask", &pending);

    let (st, v) = s
        .call(
            "POST",
            &format!("{over}/refuse"),
            "t-fleet",
            Some(json!({"reason": "not today"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    common::assert_named_by(&doc, "ApprovalTask", &v);
    assert_eq!(v["refused_overrides"].as_array().map(Vec::len), Some(1));

    let (st, v) = s
        .call("POST", &over, "t-director", Some(ask("c is the mayor")))
        .await;
    assert_eq!(st, 202, "{v}");
    let (st, v) = s
        .call(
            "POST",
            &format!("{over}/confirm"),
            "t-fleet",
            Some(json!({"reason": "agreed"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["verdict"], "overridden", "{v}");
    common::assert_named_by(&doc, "ApprovalTask", &v);

    let (st, page) = s.call("GET", "/v1/approvals", "t-viewer", None).await;
    assert_eq!(st, 200, "{page}");
    common::assert_named_by(&doc, "ApprovalPage", &page);

    let (st, report) = s
        .call("GET", "/v1/overrides/report", "t-viewer", None)
        .await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(
        (report["effective"].as_u64(), report["refused"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    common::assert_named_by(&doc, "OverrideReport", &report);

    let (st, audit) = s.call("GET", "/v1/audit", "t-viewer", None).await;
    assert_eq!(st, 200, "{audit}");
    common::assert_named_by(&doc, "AuditPage", &audit);
    let instance = task["instance"].as_str().unwrap();
    let done = s
        .until(&format!("/v1/instances/{instance}"), |v| {
            v["instance"]["status"] == "completed"
        })
        .await;
    assert_eq!(done["instance"]["output"]["stops"], json!(["c", "a", "b"]));
    let (st, records) = s
        .call(
            "GET",
            &format!("/v1/instances/{instance}/decisions"),
            "t-viewer",
            None,
        )
        .await;
    assert_eq!(st, 200, "{records}");
    assert!(records["items"][0]["override"].is_object(), "{records}");
    common::assert_named_by(&doc, "DecisionList", &records);
}
