//! Every route of the fake server, hit over real HTTP.

use baton_testkit::FakeServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; it needs one installed even for plain
    // http. A second install fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Redirects are asserted on, not followed.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get(url: &str) -> (StatusCode, Value) {
    let resp = client().get(url).send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn petstore_serves_pets_by_id_and_status() {
    let server = FakeServer::start().await;
    let base = format!("{}/petstore/v2", server.base_url());

    let (status, pet) = get(&format!("{base}/pet/1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pet["id"], json!(1));
    assert_eq!(pet["status"], json!("available"));
    assert!(pet["name"].is_string());

    let (status, problem) = get(&format!("{base}/pet/11")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["status"], json!(404));

    let (status, pets) = get(&format!("{base}/pet/findByStatus?status=available")).await;
    assert_eq!(status, StatusCode::OK);
    let pets = pets.as_array().expect("array");
    assert!(pets.len() >= 2);
    assert!(pets.iter().all(|p| p["status"] == json!("available")));

    let (_, sold) = get(&format!("{base}/pet/findByStatus?status=sold")).await;
    assert!(
        sold.as_array()
            .expect("array")
            .iter()
            .all(|p| p["status"] == json!("sold"))
    );

    let (status, _) = get(&format!("{base}/pet/getPetByName/Milou")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn swagger_document_points_back_at_the_server() {
    let server = FakeServer::start().await;
    let (status, doc) = get(&format!("{}/petstore/v2/swagger.json", server.base_url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["swagger"], json!("2.0"));
    assert_eq!(doc["host"], json!(server.addr.to_string()));
    assert_eq!(doc["basePath"], json!("/petstore/v2"));
    assert_eq!(doc["schemes"], json!(["http"]));
    assert_eq!(
        doc["paths"]["/pet/findByStatus"]["get"]["operationId"],
        json!("findPetsByStatus")
    );
    assert_eq!(
        doc["paths"]["/pet/{petId}"]["get"]["operationId"],
        json!("getPetById")
    );
    assert_eq!(
        doc["paths"]["/pet/{petId}"]["get"]["parameters"][0]["in"],
        json!("path")
    );
}

#[tokio::test]
async fn httpbin_basic_auth_checks_credentials() {
    let server = FakeServer::start().await;
    let url = format!(
        "{}/httpbin/basic-auth/serverless-workflow/conformance-test",
        server.base_url()
    );

    let resp = client()
        .get(&url)
        .basic_auth("serverless-workflow", Some("conformance-test"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "authenticated": true, "user": "serverless-workflow" })
    );

    let resp = client()
        .get(&url)
        .basic_auth("serverless-workflow", Some("wrong"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = client().get(&url).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn ledger_applies_each_key_once() {
    let server = FakeServer::start().await;
    let url = format!("{}/ledger/effects", server.base_url());
    let post = |key: &'static str| {
        client()
            .post(&url)
            .header("Idempotency-Key", key)
            .json(&json!({ "amount": 5 }))
            .send()
    };

    let requests = server.ledger_requests();
    let first = post("k1").await.expect("request");
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(
        first.json::<Value>().await.expect("json"),
        json!({ "key": "k1", "applied": 1 })
    );
    let again = post("k1").await.expect("request");
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.expect("json"),
        json!({ "key": "k1", "applied": 1 })
    );
    assert_eq!(
        post("k2").await.expect("request").status(),
        StatusCode::CREATED
    );

    let no_key = client()
        .post(&url)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(no_key.status(), StatusCode::BAD_REQUEST);

    let delayed = client()
        .post(format!("{url}?delay_ms=20"))
        .header("Idempotency-Key", "k3")
        .body("not json at all")
        .send()
        .await
        .expect("request");
    assert_eq!(delayed.status(), StatusCode::CREATED);

    assert_eq!(
        *requests.borrow(),
        4,
        "requests without a key are not recorded"
    );
    let expected = json!({ "keys": {
        "k1": { "applied": 1, "seen": 2 },
        "k2": { "applied": 1, "seen": 1 },
        "k3": { "applied": 1, "seen": 1 },
    }});
    let (status, report) = get(&format!("{}/ledger/report", server.base_url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report, expected);
    assert_eq!(server.ledger_report(), expected);

    let (status, ok) = get(&format!("{}/ledger/ok", server.base_url())).await;
    assert_eq!((status, ok), (StatusCode::OK, json!({ "ok": true })));
}

#[tokio::test]
async fn scripted_faults() {
    let server = FakeServer::start().await;
    let base = server.base_url();

    let resp = client()
        .get(format!("{base}/redirect?to=/status/204"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], "/status/204");

    let (status, body) = get(&format!("{base}/status/418")).await;
    assert_eq!(
        (status, body),
        (StatusCode::IM_A_TEAPOT, json!({ "status": 418 }))
    );
    let (status, _) = get(&format!("{base}/status/nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for attempt in 1..=2 {
        let (status, body) = get(&format!("{base}/flaky/a?fail=2")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["attempt"], json!(attempt));
    }
    let (status, body) = get(&format!("{base}/flaky/a?fail=2")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "attempts": 3 })));
    // Keys count separately.
    let (status, _) = get(&format!("{base}/flaky/b?fail=1")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.flaky_calls("a"), 3);
    assert_eq!(server.flaky_calls("b"), 1);

    let (status, body) = get(&format!("{base}/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status"], json!(404));
}

#[tokio::test]
async fn servers_are_independent_and_stop_on_shutdown() {
    let one = FakeServer::start().await;
    let two = FakeServer::start().await;
    assert_ne!(one.addr, two.addr);
    get(&format!("{}/flaky/k?fail=5", one.base_url())).await;
    assert_eq!(two.flaky_calls("k"), 0);

    let url = format!("{}/ledger/ok", one.base_url());
    one.shutdown().await;
    // A fresh client: a pooled keep-alive connection would not show that the listener is gone.
    assert!(client().get(&url).send().await.is_err());
}
