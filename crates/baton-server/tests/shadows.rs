//! Shadows over the API: roles (admin registers, operator posts legacy decisions, viewer reads),
//! problem details for bad requests, idempotent posts, the report, the metric, the dashboard
//! page and the audit trail.

mod common;

use common::Server;
use serde_json::{Value, json};

const CONFIG: &str = "
tokens:
  - { name: ada, token: t-admin, roles: [admin] }
  - { name: olu, token: t-operator, roles: [operator] }
  - { name: vic, token: t-viewer, roles: [viewer] }
";

/// Keeps stops late by 15 minutes or more, unless it is the lumber yard.
const CANDIDATE: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: reroute, version: '2.0.0' }
do:
  - answer:
      set:
        action: '${ if .customer == "lumber-yard-7" then "keep" elif .delay >= 15 then "reroute" else "keep" end }'
"#;

async fn server() -> Server {
    common::start(CONFIG, false, reqwest::Client::builder()).await
}

fn decision(case: &str, customer: &str, delay: u32, action: &str) -> Value {
    json!({
        "case": case,
        "inputs": {"customer": customer, "delay": delay},
        "decision": {"action": action},
        "decided_at": "2026-11-16T09:30:00-05:00",
        "decided_by": "dispatcher",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadows_over_the_api() {
    let s = server().await;
    let (st, _) = s
        .call(
            "POST",
            "/v1/flows",
            "t-operator",
            Some(json!({"source": CANDIDATE})),
        )
        .await;
    assert_eq!(st, 201);
    let registration = json!({
        "name": "week",
        "candidate": {"flow": "reroute", "version": "2.0.0"},
        "live": {"legacy": "dispatcher"},
        "fields": ["action"],
    });
    for token in ["t-viewer", "t-operator"] {
        let (st, p) = s
            .call("POST", "/v1/shadows", token, Some(registration.clone()))
            .await;
        assert_eq!(st, 403, "{p}");
        assert_eq!(p["code"], "BATON-API-002");
    }
    let (st, p) = s
        .call(
            "POST",
            "/v1/shadows",
            "t-admin",
            Some(json!({"name": "week", "candidate": {"flow": "reroute", "version": "9.9.9"}, "live": {"legacy": "dispatcher"}})),
        )
        .await;
    assert_eq!(st, 400, "{p}");
    assert_eq!(p["code"], "BATON-API-004");
    let (st, p) = s
        .call(
            "POST",
            "/v1/shadows",
            "t-admin",
            Some(json!({"name": "week", "candidate": {"flow": "reroute", "version": "2.0.0"}, "live": {}})),
        )
        .await;
    assert_eq!(st, 400, "{p}");
    let (st, reg) = s
        .call("POST", "/v1/shadows", "t-admin", Some(registration.clone()))
        .await;
    assert_eq!(st, 201, "{reg}");
    assert_eq!(reg["candidate"]["version"], "2.0.0");
    // The OpenAPI document names every field of what the server sends.
    let (_, doc) = s.call("GET", "/openapi.json", "t-viewer", None).await;
    common::assert_named_by(&doc, "ShadowRegistration", &reg);
    let (st, _) = s
        .call("POST", "/v1/shadows", "t-admin", Some(registration.clone()))
        .await;
    assert_eq!(st, 200, "registering the same again is idempotent");
    let mut other = registration.clone();
    other["fields"] = json!([]);
    let (st, p) = s.call("POST", "/v1/shadows", "t-admin", Some(other)).await;
    assert_eq!((st, p["code"].as_str()), (409, Some("BATON-API-005")));

    // Legacy decisions: operators post, viewers may not; the same case again is a repeat.
    let (st, _) = s
        .call(
            "POST",
            "/v1/shadows/week/decisions",
            "t-viewer",
            Some(decision("c-1", "store-01", 30, "reroute")),
        )
        .await;
    assert_eq!(st, 403);
    let posts = [
        decision("c-1", "store-01", 30, "reroute"),
        decision("c-2", "lumber-yard-7", 40, "reroute"),
        decision("c-3", "store-02", 5, "keep"),
    ];
    for d in &posts {
        let (st, v) = s
            .call(
                "POST",
                "/v1/shadows/week/decisions",
                "t-operator",
                Some(d.clone()),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        common::assert_named_by(&doc, "ShadowCase", &v);
    }
    let (st, _) = s
        .call(
            "POST",
            "/v1/shadows/week/decisions",
            "t-operator",
            Some(posts[0].clone()),
        )
        .await;
    assert_eq!(st, 200);
    let (st, p) = s
        .call(
            "POST",
            "/v1/shadows/week/decisions",
            "t-operator",
            Some(decision("c-1", "store-01", 30, "keep")),
        )
        .await;
    assert_eq!((st, p["code"].as_str()), (409, Some("BATON-API-005")));
    let (st, p) = s
        .call(
            "POST",
            "/v1/shadows/week/decisions",
            "t-operator",
            Some(json!({"case": "c-9", "inputs": {}, "decision": {}, "decided_at": "Tuesday"})),
        )
        .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (400, Some("BATON-API-004")),
        "{p}"
    );
    let (st, _) = s
        .call(
            "POST",
            "/v1/shadows/nope/decisions",
            "t-operator",
            Some(posts[0].clone()),
        )
        .await;
    assert_eq!(st, 404);

    // The shadows run in the background: poll the report (bounded) until all are compared.
    let mut report = Value::Null;
    for _ in 0..2_000 {
        let (st, r) = s
            .call("GET", "/v1/shadows/week/report", "t-viewer", None)
            .await;
        assert_eq!(st, 200, "{r}");
        report = r;
        if report["compared"] == 3 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(report["compared"], 3, "{report}");
    assert_eq!(report["agreed"], 2);
    assert_eq!(report["fields"], json!({".action": 1}));
    assert_eq!(report["differences"][0]["case"], "c-2");
    assert_eq!(
        report["differences"][0]["differences"],
        json!([{"field": ".action", "live": "reroute", "shadow": "keep"}])
    );
    let rate = report["agreement_rate"].as_f64().unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9);
    common::assert_named_by(&doc, "ShadowReport", &report);
    // Cases carry the legacy system's time: a period before it has none.
    let (_, early) = s
        .call(
            "GET",
            "/v1/shadows/week/report?until=2026-11-16T00:00:00Z",
            "t-viewer",
            None,
        )
        .await;
    assert_eq!(early["cases"], 0);
    let (st, p) = s
        .call(
            "GET",
            "/v1/shadows/week/report?since=soon",
            "t-viewer",
            None,
        )
        .await;
    assert_eq!((st, p["code"].as_str()), (400, Some("BATON-API-004")));
    let (st, case) = s
        .call("GET", "/v1/shadows/week/cases/c-2", "t-viewer", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(case["status"], "compared");
    common::assert_named_by(&doc, "ShadowCase", &case);
    let (st, list) = s.call("GET", "/v1/shadows", "t-viewer", None).await;
    assert_eq!((st, list["items"][0]["name"].as_str()), (200, Some("week")));
    common::assert_named_by(&doc, "ShadowList", &list);

    // The metric, the dashboard page and the audit trail.
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("baton_shadow_agreement_ratio{shadow=\"week\"}"))
        .unwrap_or_else(|| panic!("no agreement metric in\n{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - 2.0 / 3.0).abs() < 1e-6, "{line}");
    let (st, page) = s.call("GET", "/ui/shadows/week", "t-viewer", None).await;
    assert_eq!(st, 200);
    let page = page.as_str().unwrap().to_string();
    assert!(page.contains("66.7%"), "{page}");
    assert!(page.contains("data-case=\"c-2\""), "{page}");
    let sid = case["shadow"]["instance"].as_str().unwrap();
    let (st, inst) = s
        .call("GET", &format!("/ui/instances/{sid}"), "t-viewer", None)
        .await;
    assert_eq!(st, 200);
    assert!(inst.as_str().unwrap().contains("A shadow run of"), "{inst}");
    let (st, _) = s.call("GET", "/ui/shadows/nope", "t-viewer", None).await;
    assert_eq!(st, 404);
    // Stopping: admins only; then no new decision is taken, and the report stays.
    let (st, _) = s
        .call("DELETE", "/v1/shadows/week", "t-operator", None)
        .await;
    assert_eq!(st, 403);
    let (st, stopped) = s.call("DELETE", "/v1/shadows/week", "t-admin", None).await;
    assert_eq!(st, 200, "{stopped}");
    assert_eq!(stopped["retired_by"], "ada");
    let (st, again) = s.call("DELETE", "/v1/shadows/week", "t-admin", None).await;
    assert_eq!(
        (st, &again["retired_at_ms"]),
        (200, &stopped["retired_at_ms"])
    );
    let (st, p) = s
        .call(
            "POST",
            "/v1/shadows/week/decisions",
            "t-operator",
            Some(decision("c-4", "store-01", 30, "reroute")),
        )
        .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (409, Some("BATON-API-005")),
        "{p}"
    );
    let (_, after) = s
        .call("GET", "/v1/shadows/week/report", "t-viewer", None)
        .await;
    assert_eq!(after["compared"], 3);
    let (_, page) = s.call("GET", "/ui/shadows", "t-viewer", None).await;
    assert!(page.as_str().unwrap().contains(">stopped</span>"));
    let (_, audit) = s.call("GET", "/v1/audit", "t-admin", None).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert!(actions.contains(&"shadow.register"), "{actions:?}");
    assert_eq!(
        actions.iter().filter(|a| **a == "shadow.stop").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "shadow.legacy_decision")
            .count(),
        3,
        "{actions:?}"
    );
}
