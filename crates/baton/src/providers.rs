//! Loading the provider catalogue and secrets for `run`, `resume` and `validate`, and the
//! end-of-run provider summary.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use baton_engine::{Clock, ProviderLayer, Secrets, SystemClock};
use baton_provider::Catalog;
use serde_json::Value;

/// Reads and checks a catalogue; the error holds every diagnostic as `FILE:LINE:COL: …`.
pub fn load_catalog_file(path: &Path) -> Result<Catalog> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    baton_provider::load_catalog(&text).map_err(|diags| {
        let file = path.display().to_string();
        anyhow::anyhow!(
            "{}",
            diags
                .iter()
                .map(|d| d.render(&file))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// A secrets file: a mapping of names to string values.
fn load_secrets(path: &Path) -> Result<Secrets> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secrets file {}", path.display()))?;
    let parsed = baton_flow::parse::parse_document(&text).map_err(|diags| {
        let file = path.display().to_string();
        anyhow::anyhow!(
            "{}",
            diags
                .iter()
                .map(|d| d.render(&file))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let Value::Object(map) = parsed.value else {
        bail!(
            "{}: the secrets file must be a mapping of names to values",
            path.display()
        );
    };
    let mut file = BTreeMap::new();
    for (k, v) in map {
        let Value::String(s) = v else {
            // The value is not echoed: it is a secret.
            bail!("{}: the secret `{k}` must be a string", path.display());
        };
        file.insert(k, s);
    }
    Ok(Secrets { file })
}

pub fn load_layer(path: &Path, secrets: Option<&Path>) -> Result<ProviderLayer> {
    let catalog = load_catalog_file(path)?;
    let secrets = match secrets {
        Some(p) => load_secrets(p)?,
        None => Secrets::default(),
    };
    ProviderLayer::new(catalog, &secrets, SystemClock.now_ms())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// One line per provider that was called: outcomes, waits, breaker.
pub fn print_summary(snapshot: &Value) {
    let Some(map) = snapshot.as_object() else {
        return;
    };
    for (name, s) in map {
        let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
        if n("calls") == 0 && n("rejected_open") == 0 {
            continue;
        }
        let breaker = s
            .get("breaker")
            .and_then(Value::as_str)
            .map(|b| format!(", breaker {b}"))
            .unwrap_or_default();
        eprintln!(
            "  provider {name}: {} requests; ok {} failed {} unknown {} stale {}; retries {} (429: {}); limiter waits {} ({} ms); fast-failed {}; fallbacks {}; reconciled {}/{}{breaker}",
            n("calls"),
            n("ok"),
            n("failed"),
            n("unknown"),
            n("stale"),
            n("retries"),
            n("throttled"),
            n("limiter_waits"),
            n("limiter_wait_ms"),
            n("rejected_open"),
            n("fallbacks"),
            n("reconciled_applied"),
            n("reconciled_not_applied"),
        );
    }
}
