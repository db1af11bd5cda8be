//! Helpers shared by the engine's integration tests.

use baton_engine::{Features, Runtime};
use baton_store::Store;
use serde_json::Value;

/// The shadow case `case` of registration `name` once both sides are compared.
pub async fn compared<S: Store>(rt: &Runtime<S>, name: &str, case: &str) -> Value {
    for _ in 0..20_000 {
        if let Ok(c) = rt.shadows().case(name, case).await
            && c["status"] == "compared"
        {
            return c;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "case {case} was never compared: {:?}",
        rt.shadows().case(name, case).await
    );
}
