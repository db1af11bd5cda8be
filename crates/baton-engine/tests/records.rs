//! Decision records over a runtime with every feature: the export of decisions made leaves
//! shadow runs out (their effects were stand-ins, so their decisions were never acted on).

mod support;

use std::sync::Arc;

use baton_engine::shadow::{LegacyDecision, LiveSide};
use baton_engine::{Features, RuntimeOptions};
use baton_store::MemoryStore;
use serde_json::{Value, json};
use support::compared;

/// A stand-in for the DMN `decide` function: always decides `hold`.
struct Decide;
impl baton_engine::Function for Decide {
    fn is_local(&self) -> bool {
        true
    }
    fn invoke(&self, _call: baton_engine::Call<'_>, _args: Value) -> baton_engine::FunctionResult {
        Box::pin(async {
            baton_core::Outcome::ok(json!({"output": {"action": "hold"},
                "model": {"file": "r.dmn", "hash": "h", "name": "R"}}))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_export_leaves_shadow_runs_out() {
    let rt = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    rt.functions().register("decide", Decide);
    for version in ["1.0.0", "2.0.0"] {
        rt.register_flow(&format!(
            "document: {{ dsl: '1.0.3', namespace: test, name: rules, version: '{version}' }}
do:
  - pick:
      call: decide
      with: {{ model: r.dmn, decision: R, input: {{ x: 1 }} }}
      output: {{ as: .output }}
"
        ))
        .await
        .unwrap();
    }
    rt.shadows()
        .register(
            "legacy-rules",
            ("test", "rules", "2.0.0"),
            LiveSide::Legacy {
                system: "old".into(),
            },
            vec![],
            "admin",
        )
        .await
        .unwrap();
    rt.shadows()
        .post_legacy(
            "legacy-rules",
            LegacyDecision {
                case: "c-1".into(),
                inputs: json!({}),
                decision: json!({"action": "hold"}),
                decided_at_ms: None,
                decided_by: None,
            },
            "olu",
        )
        .await
        .unwrap();
    compared(&rt, "legacy-rules", "c-1").await;
    let program =
        baton_core::FlowResolver::resolve(&**rt.catalog(), "test", "rules", "1.0.0").unwrap();
    let live = rt.start(program, json!({})).await.unwrap();
    rt.wait(&live).await.unwrap();
    let mut exported = Vec::new();
    rt.decisions()
        .export(0, u64::MAX, None, 1000, |recs| {
            exported.extend(recs.into_iter().map(|r| r.instance));
            std::future::ready(true)
        })
        .await
        .unwrap();
    assert_eq!(exported, vec![live.0.clone()], "only the live decision");
}
