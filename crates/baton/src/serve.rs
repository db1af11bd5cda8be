//! `baton serve`: the API, the dashboard and the workers in one process, until Ctrl-C or
//! SIGTERM. `--demo` adds the Maplewood simulator, its flows and a few live instances.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use baton_engine::{Actor, Role, RuntimeOptions};
use baton_server::{AppState, ServerConfig};
use baton_store::{SqliteOptions, SqliteStore, Store};
use serde_json::json;

use crate::{ProviderArgs, providers};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The embedded store (SQLite file).
    #[arg(long, default_value = crate::DEFAULT_STORE, env = "BATON_STORE")]
    store: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "BATON_LISTEN")]
    listen: SocketAddr,
    /// Directory of flows to register at start (every file with a `document:` header).
    #[arg(long, env = "BATON_FLOWS")]
    flows: Option<PathBuf>,
    #[command(flatten)]
    providers: ProviderArgs,
    /// Server configuration (YAML): API tokens with roles and groups, request limits.
    #[arg(long, env = "BATON_CONFIG")]
    config: Option<PathBuf>,
    /// Trigger rules (YAML): which events start or signal instances. Without it, events are
    /// still validated (or quarantined), deduplicated and offered to listening instances.
    #[arg(long, env = "BATON_TRIGGERS")]
    triggers: Option<PathBuf>,
    /// Start with the Maplewood simulator, its flows, demo tokens and live instances.
    #[arg(long)]
    demo: bool,
    /// Send traces (a span per task and per API request) to this OTLP/HTTP collector, e.g.
    /// http://127.0.0.1:4318. Without it, no traces are recorded.
    #[arg(long, env = "BATON_OTLP_ENDPOINT", value_parser = baton_server::otlp::parse_endpoint)]
    otlp_endpoint: Option<String>,
    /// Log lines on stderr: text, or json (one object per line).
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        default_value = "text",
        env = "BATON_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The demo's tokens. They are published in the README: a demo server is not for real data.
const DEMO_CONFIG: &str = "
tokens:
  - { name: admin, token: demo-admin, roles: [admin] }
  - { name: dana, token: demo-dispatcher, roles: [viewer, approver], groups: [dispatchers] }
  - { name: olu, token: demo-operator, roles: [operator] }
  - { name: vic, token: demo-viewer, roles: [viewer] }
  - { name: rhea, token: demo-director, roles: [viewer, approver], groups: [directors] }
  - { name: finn, token: demo-fleet-manager, roles: [viewer, approver], groups: [fleet-managers] }
overrides:
  # Story 10: only a director (or an admin) overrides a route, and a fleet manager confirms.
  - flow: maplewood/director-override
    decision: route
    allow: [ 'group:directors', 'role:admin' ]
    second_approver: [ 'group:fleet-managers' ]
";

const DEMO_FLOWS: &[&str] = &[
    include_str!("../../../examples/approval-demo.yaml"),
    include_str!("../../../examples/maplewood/morning-plan.yaml"),
    include_str!("../../../examples/maplewood/stale-stock.yaml"),
    include_str!("../../../examples/maplewood/address-checks.yaml"),
    include_str!("../../../examples/maplewood/reserve-and-book.yaml"),
    include_str!("../../../examples/maplewood/director-override.yaml"),
];
const DEMO_PROVIDERS: &str = include_str!("../../../examples/maplewood/providers.yaml");
/// The simulated carrier accepts this token (examples/maplewood/secrets.yaml).
const DEMO_SECRETS_TOKEN: &str = "maplewood-demo-token";

fn load_config(path: Option<&Path>, demo: bool) -> Result<ServerConfig> {
    let env = |k: &str| std::env::var(k).ok();
    let text = match (path, demo) {
        (Some(p), _) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the server configuration {}", p.display()))?,
        (None, true) => DEMO_CONFIG.to_string(),
        (None, false) => String::new(),
    };
    let file = path.map_or("demo".to_string(), |p| p.display().to_string());
    let mut config = if text.trim().is_empty() {
        ServerConfig::default()
    } else {
        baton_server::load_config(&text, &env).map_err(|ds| {
            anyhow::anyhow!(
                "{}",
                ds.iter()
                    .map(|d| d.render(&file))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?
    };
    // One admin token from the environment is enough to start without a file.
    if let Ok(token) = std::env::var("BATON_ADMIN_TOKEN")
        && !token.is_empty()
    {
        config.tokens.insert(
            &token,
            Actor {
                name: "admin".into(),
                roles: vec![Role::Admin],
                groups: Vec::new(),
            },
        );
    }
    if config.tokens.is_empty() {
        bail!(
            "no API tokens: pass --config FILE (tokens with roles) or set BATON_ADMIN_TOKEN; \
             `baton serve --demo` uses the demo tokens"
        );
    }
    Ok(config)
}

/// Registers every flow file in `dir` (files without a `document:` header are skipped).
async fn register_dir(state: &AppState, dir: &Path) -> Result<usize> {
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        if !text
            .lines()
            .any(|l| l.starts_with("document:") || l.contains("\"document\""))
        {
            continue;
        }
        baton_server::api::register_source(state, &text)
            .await
            .map_err(|e| {
                let doc = e.doc();
                anyhow::anyhow!(
                    "{}: {}{}",
                    path.display(),
                    doc.detail.unwrap_or(doc.title),
                    doc.errors.map(|e| format!("\n{e}")).unwrap_or_default()
                )
            })?;
        n += 1;
    }
    Ok(n)
}

/// The future that resolves on Ctrl-C or SIGTERM. The handlers are installed here, before the
/// server says it listens, so a signal sent right after that line is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
    }
}

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    let config = load_config(args.config.as_deref(), args.demo)?;
    let store = Arc::new(
        SqliteStore::open(&args.store, SqliteOptions::default())
            .with_context(|| format!("cannot open the store {}", args.store.display()))?,
    );
    let mut options = RuntimeOptions::default();
    let mut sim = None;
    if args.demo && args.providers.providers.is_none() {
        let s = baton_sim::Sim::start(baton_sim::SimOptions {
            start: Some("now".into()),
            ..Default::default()
        })
        .await
        .context("cannot start the simulator")?;
        let catalog_text =
            DEMO_PROVIDERS.replace("${MAPLEWOOD_URL:-http://127.0.0.1:7400}", &s.base_url());
        let catalog = baton_provider::load_catalog(&catalog_text).map_err(|d| {
            anyhow::anyhow!(
                "demo catalogue: {:?}",
                d.iter()
                    .map(|d| d.render("providers.yaml"))
                    .collect::<Vec<_>>()
            )
        })?;
        let mut secrets = baton_engine::Secrets::default();
        secrets
            .file
            .insert("carrier_token".into(), DEMO_SECRETS_TOKEN.into());
        let layer = baton_engine::ProviderLayer::new(
            catalog,
            &secrets,
            baton_engine::Clock::now_ms(&baton_engine::SystemClock),
        )
        .map_err(|e| anyhow::anyhow!("demo catalogue: {e}"))?;
        options.allowed_url_prefixes = Some(layer.catalog().base_urls());
        options.providers = Some(Arc::new(layer));
        eprintln!("simulator (Maplewood) on {}", s.base_url());
        sim = Some(s);
    } else if let Some(path) = &args.providers.providers {
        let layer = providers::load_layer(path, args.providers.secrets.as_deref())?;
        options.allowed_url_prefixes = Some(layer.catalog().base_urls());
        options.providers = Some(Arc::new(layer));
    }
    let runtime = crate::with_decide(baton_engine::runtime(store.clone(), options));

    // Every stored flow version is known again before instances resume.
    for rec in store.flows().await? {
        if let Some(src) = store.flow_source(&rec.flow.hash).await? {
            runtime.register_flow(&src).await.with_context(|| {
                format!(
                    "stored flow {}/{}:{}",
                    rec.flow.namespace, rec.flow.name, rec.flow.version
                )
            })?;
        }
    }
    let state = AppState::new(runtime.clone(), config);
    // Before anything runs, so that resumed instances are traced too.
    let otlp = args
        .otlp_endpoint
        .clone()
        .map(|url| baton_server::otlp::OtlpExporter::start(url, "baton", &runtime));
    if let Some(dir) = &args.flows {
        let n = register_dir(&state, dir).await?;
        eprintln!("registered {n} flow(s) from {}", dir.display());
    }
    let set = match &args.triggers {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            baton_engine::triggers::load_triggers(&text).map_err(|ds| {
                let file = path.display().to_string();
                anyhow::anyhow!(
                    "{}",
                    ds.iter()
                        .map(|d| d.render(&file))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })?
        }
        None => baton_engine::triggers::TriggerSet { rules: Vec::new() },
    };
    let rules = set.rules.len();
    state
        .install_triggers(set)
        .await
        .map_err(|e| anyhow::anyhow!("{:?}", e.doc()))?;
    if rules > 0 {
        eprintln!("{rules} trigger rule(s) loaded");
    }
    spawn_pruning(&state);
    let resumed = runtime.resume_all().await?;
    if !resumed.is_empty() {
        eprintln!("resumed {} unfinished instance(s)", resumed.len());
    }
    if args.demo {
        start_demo(&state).await?;
    }

    let shutdown = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "baton serving on http://{addr}: dashboard http://{addr}/ui, API http://{addr}/v1, docs http://{addr}/docs, metrics http://{addr}/metrics"
    );
    if args.demo {
        eprintln!(
            "demo: log in to the dashboard with a demo token from the README (e.g. the dispatcher's)"
        );
    }
    match &otlp {
        Some(exporter) => {
            eprintln!("traces to {}", exporter.endpoint());
            baton_server::otlp::serve_with_tracing(listener, state, exporter.clone(), shutdown)
                .await?
        }
        None => baton_server::serve(listener, state, shutdown).await?,
    }
    if let Some(exporter) = &otlp {
        // The last spans, within a bound: a collector that is down must not hold up the exit.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), exporter.flush()).await;
    }
    eprintln!(
        "shutting down: requests finished; every instance is journaled and resumes at the next start"
    );
    store.close();
    if let Some(s) = sim {
        s.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Forgets event identities past the dedupe window, once an hour.
fn spawn_pruning(state: &Arc<AppState>) {
    let state = state.clone();
    tokio::spawn(async move {
        let clock = state.runtime.clock().clone();
        loop {
            clock.sleep_until(clock.now_ms() + 3_600_000).await;
            if let Some(t) = state.triggers.get()
                && let Err(e) = t.prune(clock.now_ms()).await
            {
                tracing::warn!(error = %e, "pruning old events failed; retrying in an hour");
            }
        }
    });
}

/// Registers the Maplewood flows and starts a few instances so the dashboard has something live.
async fn start_demo(state: &AppState) -> Result<()> {
    for text in DEMO_FLOWS {
        baton_server::api::register_source(state, text)
            .await
            .map_err(|e| anyhow::anyhow!("demo flow: {:?}", e.doc()))?;
    }
    let admin = Actor {
        name: "demo".into(),
        roles: vec![Role::Admin],
        groups: Vec::new(),
    };
    let starts = [
        (
            "approval-demo",
            json!({"order": "ord-1042", "delay": 42, "backup_driver": "drv-17"}),
        ),
        (
            "approval-demo",
            json!({"order": "ord-1077", "delay": 12, "backup_driver": "drv-03"}),
        ),
        ("morning-plan", json!({})),
        ("reserve-and-book", json!({})),
        ("director-override", json!({})),
        (
            "stale-stock",
            json!({"store": "store-01", "sku": "sku-lumber-2x4", "qty": 10}),
        ),
    ];
    for (flow, input) in starts {
        let req = baton_server::api::views::StartRequest {
            flow: flow.into(),
            namespace: None,
            version: None,
            input: Some(input),
        };
        baton_server::api::start_instance(state, &admin, req, None)
            .await
            .map_err(|e| anyhow::anyhow!("demo instance of {flow}: {:?}", e.doc()))?;
    }
    eprintln!(
        "demo: started {} instances (three wait for a dispatcher's approval)",
        6
    );
    Ok(())
}
