//! `baton`: the command-line interface. Thin: every verb parses its flags, calls the library
//! crates and prints. Data goes to stdout, progress and diagnostics to stderr.
//!
//! Exit codes: 0 success; 1 the flow faulted, a validation error, a failed check; 2 bad usage or an
//! internal error (store unreadable, …).

/// Prints a line of data on stdout. When the reader has gone away (`baton list | head`), the
/// output ends quietly with exit 0 instead of a panic; any other write error is exit 2.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("baton: cannot write to stdout: {e}");
            std::process::exit(2);
        }
    }};
}

mod bench;
mod client;
mod decide;
mod providers;
mod records;
mod serve;
mod shadow;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use baton_core::{InstanceId, JournalEntry, Status, TaskPhase};
use baton_engine::{Runtime, RuntimeOptions};
use baton_store::{SqliteOptions, SqliteStore, Store};
use clap::{Parser, Subcommand};
use serde_json::Value;

pub(crate) const DEFAULT_STORE: &str = "baton.db";

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Durable decision orchestration: Serverless Workflow flows that survive crashes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct StoreArg {
    /// The embedded store (SQLite file).
    #[arg(long, default_value = DEFAULT_STORE, env = "BATON_STORE")]
    store: PathBuf,
}

/// The provider catalogue and the secrets its credentials refer to.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct ProviderArgs {
    /// Provider catalogue (YAML): the external systems flows may call, with their limits.
    /// When given, outbound calls may only go to these providers.
    #[arg(long, env = "BATON_PROVIDERS")]
    pub(crate) providers: Option<PathBuf>,
    /// Secrets file (YAML or JSON mapping of name to value) for `secret: NAME` references.
    #[arg(long, env = "BATON_SECRETS")]
    pub(crate) secrets: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Check flows (and a provider catalogue); diagnostics on stderr as
    /// `FILE:LINE:COL: error[CODE]: message`.
    Validate {
        #[arg(required_unless_present = "providers")]
        flows: Vec<PathBuf>,
        #[arg(long, env = "BATON_PROVIDERS")]
        providers: Option<PathBuf>,
    },
    /// Run one instance of a flow to completion; the output JSON on stdout.
    Run {
        flow: PathBuf,
        /// Input as JSON text, or @FILE.
        #[arg(long)]
        input: Option<String>,
        #[command(flatten)]
        store: StoreArg,
        /// Directory of flows that `run: workflow` may call (default: the flow's own directory).
        #[arg(long)]
        flows: Option<PathBuf>,
        /// Do not print task progress on stderr.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        providers: ProviderArgs,
    },
    /// Resume every unfinished instance in the store and wait for them; prints `ID STATUS`.
    Resume {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        providers: ProviderArgs,
    },
    /// List instances.
    Instances {
        #[command(flatten)]
        store: StoreArg,
        #[arg(long)]
        json: bool,
        /// Only instances with this status.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show an instance: status, output and journal.
    Show {
        id: String,
        #[command(flatten)]
        store: StoreArg,
        #[arg(long)]
        json: bool,
        /// Ask a running server instead of reading the store (token from BATON_TOKEN).
        #[arg(long, env = "BATON_SERVER")]
        server: Option<String>,
    },
    #[command(flatten)]
    Client(client::ClientCommand),
    #[command(flatten)]
    Records(records::RecordsCommand),
    /// Deliver a CloudEvent (structured JSON, or @FILE) to the store, for listening instances.
    Event {
        event: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Run a conformance suite.
    Conformance {
        #[command(subcommand)]
        suite: Suite,
    },
    /// Evaluate a DMN decision; prints the result (and the trace) as JSON.
    Decide {
        model: PathBuf,
        #[arg(long)]
        decision: String,
        /// Input as JSON text, or @FILE.
        #[arg(long)]
        input: Option<String>,
        #[arg(long)]
        trace: bool,
    },
    /// Serve the fake providers used by the examples and tests (petstore, httpbin, ledger).
    FakeServer {
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: String,
    },
    /// Serve the Maplewood simulator (the demo world's providers) until Ctrl-C.
    Sim {
        /// Port on 127.0.0.1 (0 picks a free one); the examples' catalogue expects 7400.
        #[arg(long, default_value_t = 7400)]
        port: u16,
        /// Seed of the world and of every random draw.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Simulated start, RFC 3339, or `now` (the default, so `as_of` stamps agree with
        /// Baton's clock and freshness checks mean what they say).
        #[arg(long, default_value = "now")]
        start: String,
    },
    /// Benchmarks (release build): W1 local durable steps, W2 HTTP steps.
    Bench(bench::BenchArgs),
    /// Shadow runs against a server: register a candidate, post legacy decisions, the report.
    Shadow {
        #[command(subcommand)]
        cmd: shadow::ShadowCommand,
    },
    /// Run a new flow version over the inputs of recorded instances, without effects, and
    /// report where its outputs and decisions differ from what happened.
    Replay(shadow::ReplayArgs),
    /// Serve the HTTP API, the dashboard and the workers until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
}

#[derive(Subcommand)]
enum Suite {
    /// The DMN TCK: pass counts per compliance level, then `N passed, M failed`.
    Dmn {
        /// TCK test cases (default: $BATON_STANDARDS_DIR/dmn-tck/TestCases).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Write the TCK results CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// The Serverless Workflow CTK plus Baton's own scenarios.
    ServerlessWorkflow {
        /// Feature directories (default: the CTK and ./conformance/features).
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // After parsing: `baton serve --log-format` decides; other commands read the same variable.
    let json_logs = match &cli.command {
        Command::Serve(args) => args.log_format == serve::LogFormat::Json,
        _ => std::env::var("BATON_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("BATON_LOG"))
        .with_writer(std::io::stderr);
    if json_logs {
        logs.json().init();
    } else {
        logs.init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Validate { flows, providers } => Ok(validate(&flows, providers.as_deref())),
        Command::Run {
            flow,
            input,
            store,
            flows,
            quiet,
            providers,
        } => {
            run(
                &flow,
                input.as_deref(),
                &store.store,
                flows.as_deref(),
                quiet,
                &providers,
            )
            .await
        }
        Command::Resume { store, providers } => resume(&store.store, &providers).await,
        Command::Instances {
            store,
            json,
            status,
            limit,
        } => instances(&store.store, json, status.as_deref(), limit).await,
        Command::Show {
            id,
            server: Some(server),
            json,
            ..
        } => client::show(&client::ServerArgs { server, json }, &id).await,
        Command::Show {
            id, store, json, ..
        } => show(&id, &store.store, json).await,
        Command::Client(cmd) => client::run(cmd).await,
        Command::Records(cmd) => records::run(cmd).await,
        Command::Event { event, store } => publish_event(&event, &store.store).await,
        Command::Conformance {
            suite: Suite::ServerlessWorkflow { dirs },
        } => {
            let dirs = if dirs.is_empty() {
                default_feature_dirs()
            } else {
                dirs
            };
            let ok = baton_conformance::run_cli(&dirs).await;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Conformance {
            suite: Suite::Dmn { dir, csv },
        } => {
            let dir = dir.unwrap_or_else(|| standards_dir().join("dmn-tck/TestCases"));
            let (_passed, failed) = baton_decision::run_conformance_cli(&dir, csv.as_deref());
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Decide {
            model,
            decision,
            input,
            trace,
        } => {
            let input = parse_input(input.as_deref())?;
            let out = decide::cli(&model, &decision, &input, trace)?;
            out!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::FakeServer { listen } => {
            let addr = listen
                .parse()
                .with_context(|| format!("invalid address `{listen}`"))?;
            eprintln!(
                "fake providers on http://{listen} (petstore: /petstore/v2, httpbin: /httpbin, ledger: /ledger)"
            );
            baton_testkit::serve_forever(addr)
                .await
                .context("the fake server stopped")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim {
            port,
            seed,
            speed,
            start,
        } => {
            let opts = baton_sim::SimOptions {
                seed,
                speed,
                start: Some(start),
            };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            baton_sim::serve_until_interrupted(addr, opts)
                .await
                .context("the simulator stopped")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(args).await,
        Command::Shadow { cmd } => shadow::run(cmd).await,
        Command::Replay(args) => shadow::replay(args).await,
        Command::Serve(args) => serve::run(args).await,
    }
}

fn standards_dir() -> PathBuf {
    std::env::var_os("BATON_STANDARDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/standards"))
}

fn default_feature_dirs() -> Vec<PathBuf> {
    vec![
        standards_dir().join("sw-spec/ctk/features"),
        PathBuf::from("conformance/features"),
    ]
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A runtime over the embedded store with Baton's functions registered.
fn runtime(store: Arc<SqliteStore>) -> Runtime<SqliteStore> {
    with_decide(baton_engine::runtime(store, RuntimeOptions::default()))
}

/// Registers what the runtime cannot register itself: `decide`, whose DMN engine
/// (`baton-decision`) the runtime does not depend on. Every runtime the CLI builds goes
/// through here.
pub(crate) fn with_decide<S: baton_store::Store>(rt: Runtime<S>) -> Runtime<S> {
    rt.functions()
        .register(decide::DECIDE_FUNCTION, decide::Decide::default());
    rt
}

/// A runtime bound to the provider catalogue (when given): outbound calls then go only to the
/// declared providers, through their shared limits.
fn runtime_with(store: Arc<SqliteStore>, args: &ProviderArgs) -> Result<Runtime<SqliteStore>> {
    let mut options = RuntimeOptions::default();
    if let Some(path) = &args.providers {
        let layer = providers::load_layer(path, args.secrets.as_deref())?;
        options.allowed_url_prefixes = Some(layer.catalog().base_urls());
        options.providers = Some(Arc::new(layer));
    }
    Ok(with_decide(baton_engine::runtime(store, options)))
}

/// The names a flow may call, from the one table of built-in functions.
fn function_names(with_providers: bool) -> Vec<String> {
    baton_core::builtin_function_names(with_providers)
}

fn validate(flows: &[PathBuf], providers: Option<&Path>) -> ExitCode {
    let opts = baton_flow::ValidateOptions {
        known_functions: function_names(providers.is_some()),
    };
    let mut failed = false;
    if let Some(path) = providers {
        match providers::load_catalog_file(path) {
            Ok(c) => eprintln!("{}: ok ({} providers)", path.display(), c.providers.len()),
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    for path in flows {
        let text = match read(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}:1:1: error[BATON-IO-001]: {e:#}", path.display());
                failed = true;
                continue;
            }
        };
        // The flow's Baton extensions (`metadata.baton`) are checked too, with their locations.
        let loaded = baton_core::check_flow(&text, opts.known_functions.clone());
        match loaded {
            Ok(_) => eprintln!("{}: ok", path.display()),
            Err(diags) => {
                failed = true;
                for d in diags {
                    eprintln!("{}", d.render(&path.display().to_string()));
                }
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn open_store(path: &Path) -> Result<Arc<SqliteStore>> {
    let store = SqliteStore::open(path, SqliteOptions::default())
        .with_context(|| format!("cannot open the store {}", path.display()))?;
    Ok(Arc::new(store))
}

fn progress_printer(rt: &Runtime<SqliteStore>) {
    rt.on_progress(|_id, ev| {
        let phase = match ev.phase {
            TaskPhase::Started => "started",
            TaskPhase::Completed => "completed",
            TaskPhase::Skipped => "skipped",
            TaskPhase::Faulted => "faulted",
            TaskPhase::Compensated => "undone",
            TaskPhase::CompensationSkipped => "undo-skip",
            TaskPhase::CompensationUnresolved => "undo-FAIL",
        };
        eprintln!("  {phase:<9} {}", ev.reference);
    });
}

/// Registers every flow in `dir` (for `run: workflow`); files that fail to load are reported and
/// skipped, since they are not the flow being run.
async fn register_dir(rt: &Runtime<SqliteStore>, dir: &Path, except: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let is_flow = p
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
        if !is_flow || p.canonicalize().ok() == except.canonicalize().ok() {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&p)
            && let Err(e) = rt.register_flow(&text).await
        {
            tracing::debug!("skipping {} for sub-flows: {e}", p.display());
        }
    }
    Ok(())
}

fn parse_input(input: Option<&str>) -> Result<Value> {
    match input {
        None => Ok(Value::Object(Default::default())),
        Some(s) => {
            let text = match s.strip_prefix('@') {
                Some(file) => read(Path::new(file))?,
                None => s.to_string(),
            };
            serde_json::from_str(&text).context("--input is not valid JSON")
        }
    }
}

async fn run(
    flow: &Path,
    input: Option<&str>,
    store: &Path,
    flows_dir: Option<&Path>,
    quiet: bool,
    providers: &ProviderArgs,
) -> Result<ExitCode> {
    let text = read(flow)?;
    let input = parse_input(input)?;
    let rt = runtime_with(open_store(store).await?, providers)?;
    let dir = flows_dir
        .map(Path::to_path_buf)
        .or_else(|| flow.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    register_dir(&rt, &dir, flow).await?;
    // The checks registration makes, first, so a refusal is printed under the file's name.
    if let Err(diags) = rt.check_flow(&text) {
        for d in diags {
            eprintln!("{}", d.render(&flow.display().to_string()));
        }
        return Ok(ExitCode::from(1));
    }
    let program = rt.register_flow(&text).await?;
    // An input that breaks the flow's input schema starts nothing: say where and why.
    let bad = program
        .input_errors(&input)
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    if !bad.is_empty() {
        for e in bad {
            eprintln!("input{}: error: {}", e.pointer, e.message);
        }
        return Ok(ExitCode::from(1));
    }
    if !quiet {
        progress_printer(&rt);
    }
    let id = rt.start(program, input).await?;
    eprintln!("instance {id} started");
    let result = rt.wait(&id).await?;
    eprintln!("instance {id} {}", result.status.as_str());
    if !quiet && let Some(snapshot) = rt.provider_snapshot() {
        providers::print_summary(&snapshot);
    }
    match result.status {
        Status::Completed => {
            out!(
                "{}",
                serde_json::to_string_pretty(&result.output.unwrap_or(Value::Null))?
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            if let Some(p) = result.error {
                eprintln!("{}", serde_json::to_string_pretty(&p.to_value())?);
            }
            Ok(ExitCode::from(1))
        }
    }
}

async fn resume(store: &Path, providers: &ProviderArgs) -> Result<ExitCode> {
    let rt = runtime_with(open_store(store).await?, providers)?;
    let ids = rt.resume_all().await?;
    eprintln!("resuming {} instance(s)", ids.len());
    let mut all_ok = true;
    for id in ids {
        let r = rt.wait(&id).await?;
        all_ok &= r.status == Status::Completed;
        out!("{} {}", id, r.status.as_str());
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn instances(
    store: &Path,
    json: bool,
    status: Option<&str>,
    limit: usize,
) -> Result<ExitCode> {
    let status = match status {
        Some(s) => Some(Status::parse(s).with_context(|| format!("unknown status `{s}`"))?),
        None => None,
    };
    let store = open_store(store).await?;
    let list = store
        .instances(&baton_store::InstanceQuery {
            status,
            limit,
            ..Default::default()
        })
        .await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for r in list {
            out!(
                "{} {:<10} {}/{}:{}",
                r.id,
                r.status.as_str(),
                r.flow.namespace,
                r.flow.name,
                r.flow.version
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(id: &str, store: &Path, json: bool) -> Result<ExitCode> {
    let store = open_store(store).await?;
    let id = InstanceId(id.to_string());
    let Some(rec) = store.instance(&id).await? else {
        bail!("no instance {id} in the store");
    };
    let journal = store.journal(&id).await?;
    if json {
        let v = serde_json::json!({"instance": rec, "journal": journal});
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    out!("instance {}", rec.id);
    out!(
        "flow     {}/{}:{} ({})",
        rec.flow.namespace,
        rec.flow.name,
        rec.flow.version,
        rec.flow.hash
    );
    out!("status   {}", rec.status.as_str());
    if let Some(o) = &rec.output {
        out!("output   {o}");
    }
    if let Some(e) = &rec.error {
        out!("error    {e}");
    }
    out!("journal ({} entries):", journal.len());
    for (i, e) in journal.iter().enumerate() {
        let at = baton_core::time::iso8601_utc(e.at_ms());
        let what = match e {
            JournalEntry::Started { input, .. } => format!("started input={input}"),
            JournalEntry::EffectCompleted { key, outcome, .. } => {
                let detail = match outcome {
                    baton_core::Outcome::Ok { value } => truncate(&value.to_string(), 120),
                    baton_core::Outcome::Failed { problem } => problem.to_string(),
                    baton_core::Outcome::Unknown { reason } => reason.clone(),
                    baton_core::Outcome::Stale { reason, .. } => reason.clone(),
                };
                match baton_engine::explain::explain(e) {
                    Some(why) => {
                        format!("effect {key} {} {why}\n{:>31}{detail}", outcome.label(), "")
                    }
                    None => format!("effect {key} {} {detail}", outcome.label()),
                }
            }
            JournalEntry::TaskNote { task, note, .. } => match baton_engine::explain::explain(e) {
                Some(why) => format!("task {task} {why}"),
                None => format!("task {task} {}", truncate(&note.to_string(), 160)),
            },
            JournalEntry::EffectNote { key, note, .. } => {
                format!("  note {key} {}", truncate(&note.to_string(), 160))
            }
            JournalEntry::CancelRequested { reason, by, .. } => match by {
                Some(by) => format!("cancel requested by {by}: {reason}"),
                None => format!("cancel requested: {reason}"),
            },
            JournalEntry::Suspended { by, reason, .. } => match reason {
                Some(r) => format!("suspended by {by}: {r}"),
                None => format!("suspended by {by}"),
            },
            JournalEntry::Resumed { by, .. } => format!("resumed by {by}"),
            JournalEntry::Completed { output, .. } => {
                format!("completed output={}", truncate(&output.to_string(), 120))
            }
            JournalEntry::Faulted { problem, .. } => format!("faulted {problem}"),
            JournalEntry::Cancelled { reason, .. } => format!("cancelled: {reason}"),
        };
        out!("  {i:>4} {at} {what}");
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

async fn publish_event(event: &str, store: &Path) -> Result<ExitCode> {
    let text = match event.strip_prefix('@') {
        Some(f) => read(Path::new(f))?,
        None => event.to_string(),
    };
    let v: Value = serde_json::from_str(&text).context("the event is not valid JSON")?;
    let rt = runtime(open_store(store).await?);
    match rt.publish_event(v).await {
        Ok(true) => eprintln!("event stored"),
        Ok(false) => eprintln!("duplicate event (same source and id): ignored"),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
