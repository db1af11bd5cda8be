//! `baton shadow …` (client verbs against a server: register, post, report, list) and
//! `baton replay` (against a store, without a server).

use baton_engine::Features;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use baton_engine::RuntimeOptions;
use baton_engine::replay::{ReplayOptions, ReplayReport};
use baton_store::{MemoryStore, SqliteOptions, SqliteStore};
use serde_json::{Value, json};

use crate::client::{ServerArgs, call, finish, query, time_arg};
use crate::{ProviderArgs, StoreArg, providers};

#[derive(clap::Subcommand)]
pub enum ShadowCommand {
    /// Register a candidate flow version as the shadow of a live version or a legacy system
    /// (admin token).
    Register {
        /// The shadow's name.
        name: String,
        /// The candidate flow file: registered on the server first (operator or admin).
        #[arg(long, conflicts_with = "candidate")]
        flow: Option<PathBuf>,
        /// Or a flow already registered: [NAMESPACE/]NAME:VERSION.
        #[arg(long, required_unless_present = "flow")]
        candidate: Option<String>,
        /// The live flow version it runs beside: [NAMESPACE/]NAME:VERSION.
        #[arg(long, conflicts_with_all = ["legacy", "live_flow"], required_unless_present_any = ["legacy", "live_flow"])]
        live: Option<String>,
        /// Or the live flow's file: registered on the server first, then shadowed.
        #[arg(long, conflicts_with = "legacy")]
        live_flow: Option<PathBuf>,
        /// Or the legacy system whose decisions are posted (`baton shadow post`).
        #[arg(long)]
        legacy: Option<String>,
        /// An output field to compare (repeat); default: every field.
        #[arg(long = "field")]
        fields: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Post legacy decisions (operator token): JSON text, @FILE or `-` (stdin) holding one
    /// decision {case, inputs, decision, decided_at?, decided_by?}, an array of them, an object
    /// with a `decisions` array (as the simulator's /dispatch/decisions), or JSON Lines.
    Post {
        name: String,
        decisions: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The agreement report: cases, compared, agreed, differences per field, and each
    /// differing case with the rules that fired.
    Report {
        name: String,
        /// Start of the period (RFC 3339 or ms since the epoch).
        #[arg(long)]
        since: Option<String>,
        /// End of the period (exclusive).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop a shadow (admin token): no new cases; its cases and report stay.
    Stop {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The registered shadows.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `[NAMESPACE/]NAME:VERSION` as the API's flow reference.
fn flow_version(s: &str) -> Result<Value> {
    let (path, version) = s
        .rsplit_once(':')
        .with_context(|| format!("`{s}` is not [NAMESPACE/]NAME:VERSION"))?;
    let (namespace, flow) = match path.split_once('/') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, path),
    };
    if flow.is_empty() || version.is_empty() {
        bail!("`{s}` is not [NAMESPACE/]NAME:VERSION");
    }
    Ok(json!({"namespace": namespace, "flow": flow, "version": version}))
}

/// Registers a flow file on the server; its version as the API names flows, or the problem.
async fn register_flow(server: &ServerArgs, path: &Path) -> Result<Result<Value, (u16, Value)>> {
    let source =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (status, body) = call(
        server,
        "POST",
        "/v1/flows",
        Some(json!({"source": source})),
        None,
    )
    .await?;
    if status >= 400 {
        return Ok(Err((status, body)));
    }
    // The answer is the registered version (namespace, name, version, hash).
    Ok(Ok(
        json!({"namespace": body["namespace"], "flow": body["name"], "version": body["version"]}),
    ))
}

/// The decisions in a posted text: one, an array, `{decisions: [...]}`, or JSON Lines.
fn decisions_of(text: &str) -> Result<Vec<Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(Value::Object(o)) if o.get("decisions").is_some_and(Value::is_array) => {
            Ok(o["decisions"].as_array().cloned().unwrap_or_default())
        }
        Ok(v @ Value::Object(_)) => Ok(vec![v]),
        Ok(_) => bail!("expected a decision, an array of decisions or {{\"decisions\": [...]}}"),
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| format!("line {}: not valid JSON", i + 1))
            })
            .collect(),
    }
}

fn report_lines(r: &Value) {
    let rate = r["agreement_rate"]
        .as_f64()
        .map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "-".into());
    out!(
        "{}: {} agreement ({} of {} compared; {} cases; {} effects recorded, not performed)",
        r["name"].as_str().unwrap_or("?"),
        rate,
        r["agreed"],
        r["compared"],
        r["cases"],
        r["effects_not_performed"]
    );
    if let Some(fields) = r["fields"].as_object() {
        for (f, n) in fields {
            out!("  {f}: {n} differences");
        }
    }
    for d in r["differences"].as_array().into_iter().flatten() {
        out!("{} input {}", d["case"].as_str().unwrap_or("?"), d["input"]);
        for f in d["differences"].as_array().into_iter().flatten() {
            out!(
                "{} {}: live {} shadow {}",
                d["case"].as_str().unwrap_or("?"),
                f["field"].as_str().unwrap_or("?"),
                f["live"],
                f["shadow"]
            );
        }
        for (side, label) in [("shadow", "shadow"), ("live", "live")] {
            for w in d["why"][side].as_array().into_iter().flatten() {
                out!("    why ({label}): {}", w.as_str().unwrap_or("?"));
            }
        }
    }
}

pub async fn run(cmd: ShadowCommand) -> Result<ExitCode> {
    match cmd {
        ShadowCommand::Register {
            name,
            flow,
            candidate,
            live,
            live_flow,
            legacy,
            fields,
            server,
        } => {
            let candidate = match (flow, candidate) {
                (Some(path), _) => match register_flow(&server, &path).await? {
                    Ok(v) => v,
                    Err(problem) => return finish(&server, problem, |_| {}),
                },
                (None, Some(c)) => flow_version(&c)?,
                (None, None) => bail!("give --flow FILE or --candidate NAME:VERSION"),
            };
            let live = match (live, live_flow, legacy) {
                (Some(l), _, _) => json!({"flow": flow_version(&l)?}),
                (None, Some(path), _) => match register_flow(&server, &path).await? {
                    Ok(v) => json!({"flow": v}),
                    Err(problem) => return finish(&server, problem, |_| {}),
                },
                (None, None, Some(system)) => json!({"legacy": system}),
                (None, None, None) => {
                    bail!("give --live NAME:VERSION, --live-flow FILE or --legacy SYSTEM")
                }
            };
            let body =
                json!({"name": name, "candidate": candidate, "live": live, "fields": fields});
            let answer = call(&server, "POST", "/v1/shadows", Some(body), None).await?;
            finish(&server, answer, |v| {
                let c = &v["candidate"];
                out!(
                    "{} {}/{}:{} beside {}",
                    v["name"].as_str().unwrap_or("?"),
                    c["namespace"].as_str().unwrap_or(""),
                    c["name"].as_str().unwrap_or(""),
                    c["version"].as_str().unwrap_or(""),
                    match v["live"]["kind"].as_str() {
                        Some("legacy") =>
                            format!("legacy {}", v["live"]["system"].as_str().unwrap_or("?")),
                        _ => format!(
                            "{}/{}:{}",
                            v["live"]["namespace"].as_str().unwrap_or(""),
                            v["live"]["name"].as_str().unwrap_or(""),
                            v["live"]["version"].as_str().unwrap_or("")
                        ),
                    }
                )
            })
        }
        ShadowCommand::Post {
            name,
            decisions,
            server,
        } => {
            let text = if decisions == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read stdin")?;
                s
            } else if let Some(path) = decisions.strip_prefix('@') {
                std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
            } else {
                decisions
            };
            let list = decisions_of(&text)?;
            let path = format!("/v1/shadows/{name}/decisions");
            let (mut created, mut repeated) = (0, 0);
            let mut answers = Vec::new();
            for d in list {
                let (status, body) = call(&server, "POST", &path, Some(d), None).await?;
                if status >= 400 {
                    eprintln!("{created} posted before the error");
                    return finish(&server, (status, body), |_| {});
                }
                if status == 201 {
                    created += 1;
                } else {
                    repeated += 1;
                }
                if !server.json {
                    out!(
                        "{} {}",
                        body["case"].as_str().unwrap_or("?"),
                        if status == 201 {
                            "posted"
                        } else {
                            "already posted"
                        }
                    );
                }
                answers.push(body);
            }
            eprintln!("{created} posted, {repeated} already posted");
            if server.json {
                out!("{}", serde_json::to_string_pretty(&answers)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        ShadowCommand::Report {
            name,
            since,
            until,
            server,
        } => {
            let path = format!(
                "/v1/shadows/{name}/report{}",
                query(&[("since", &since), ("until", &until)])
            );
            let answer = call(&server, "GET", &path, None, None).await?;
            finish(&server, answer, report_lines)
        }
        ShadowCommand::Stop { name, server } => {
            let answer = call(
                &server,
                "DELETE",
                &format!("/v1/shadows/{name}"),
                None,
                None,
            )
            .await?;
            finish(&server, answer, |v| {
                out!(
                    "{} stopped by {}",
                    v["name"].as_str().unwrap_or("?"),
                    v["retired_by"].as_str().unwrap_or("?")
                )
            })
        }
        ShadowCommand::List { server } => {
            let answer = call(&server, "GET", "/v1/shadows", None, None).await?;
            finish(&server, answer, |v| {
                for r in v["items"].as_array().into_iter().flatten() {
                    out!(
                        "{} {}:{}{}",
                        r["name"].as_str().unwrap_or("?"),
                        r["candidate"]["name"].as_str().unwrap_or(""),
                        r["candidate"]["version"].as_str().unwrap_or(""),
                        if r["retired_at_ms"].is_u64() {
                            " (stopped)"
                        } else {
                            ""
                        }
                    );
                }
            })
        }
    }
}

/// `call: provider` in a replay without a catalogue: never performed (the replay policy answers
/// every such call), and refused if it ever were.
struct NoCatalogue;

impl baton_engine::Function for NoCatalogue {
    fn is_local(&self) -> bool {
        true
    }
    fn invoke(&self, _call: baton_engine::Call<'_>, _args: Value) -> baton_engine::FunctionResult {
        Box::pin(async {
            baton_core::Outcome::failed(baton_core::Problem::new(
                baton_core::ErrorKind::Configuration,
                "no provider catalogue: give --providers to perform reads the journal cannot answer",
            ))
        })
    }
}

/// `baton replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The new flow version (file): replayed over the recorded instances of the same flow
    /// (namespace and name) and other versions.
    #[arg(long)]
    flow: PathBuf,
    /// Only instances created at or after this time (RFC 3339 or ms since the epoch).
    #[arg(long)]
    since: Option<String>,
    /// At most this many recorded instances (the newest).
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
    /// Seconds one replayed instance may take.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    #[command(flatten)]
    store: StoreArg,
    /// With a catalogue, reads the journal cannot answer are performed; without, they are
    /// reported missing.
    #[command(flatten)]
    providers: ProviderArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn replay_lines(r: &ReplayReport) {
    for i in &r.results {
        if let Some(e) = &i.error {
            out!("{} {} not replayed: {e}", i.instance, i.recorded_version);
            continue;
        }
        let verdict = if i.same { "same" } else { "differs" };
        out!(
            "{} {} {} -> {}: {verdict}",
            i.instance,
            i.recorded_version,
            i.recorded_status,
            i.replayed_status
        );
        for d in &i.differences {
            out!("  {}: {} -> {}", d.field, d.recorded, d.replayed);
        }
        if !i.same {
            for d in &i.decisions {
                for w in &d.replayed_rules {
                    out!("    why: {w}");
                }
            }
        }
        for m in &i.missing {
            out!("  missing read at {}", m["step"].as_str().unwrap_or("?"));
        }
    }
    out!(
        "replayed {} instances with {}/{}:{}: {} same, {} differ, {} not replayed ({} unfinished and {} shadows left out); {} reads missing, {} effects recorded, not performed",
        r.instances,
        r.flow.namespace,
        r.flow.name,
        r.flow.version,
        r.same,
        r.differed,
        r.failed,
        r.unfinished_skipped,
        r.shadows_skipped,
        r.missing_reads,
        r.effects_not_performed
    );
}

pub async fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let since_ms = args
        .since
        .as_deref()
        .map(|s| time_arg("since", s))
        .transpose()?;
    if !args.store.store.exists() {
        bail!("no store at {}", args.store.store.display());
    }
    let production = SqliteStore::open(&args.store.store, SqliteOptions::default())
        .with_context(|| format!("cannot open the store {}", args.store.store.display()))?;
    // The replayed instances live in memory only: nothing is written to the recorded store.
    let mut options = RuntimeOptions::default();
    if let Some(path) = &args.providers.providers {
        let layer = providers::load_layer(path, args.providers.secrets.as_deref())?;
        options.allowed_url_prefixes = Some(layer.catalog().base_urls());
        options.providers = Some(Arc::new(layer));
    } else {
        // Without a catalogue no read may leave the process.
        options.allowed_url_prefixes = Some(Vec::new());
    }
    let perform_reads = options.providers.is_some();
    let scratch = crate::with_decide(baton_engine::runtime(Arc::new(MemoryStore::new()), options));
    if !perform_reads {
        // Flows that call catalogue operations still load; the replay answers those calls from
        // the record, or as effects not performed (without a catalogue nobody can tell a read).
        scratch
            .functions()
            .register(baton_engine::PROVIDER_FUNCTION, NoCatalogue);
    }
    let source = std::fs::read_to_string(&args.flow)
        .with_context(|| format!("cannot read {}", args.flow.display()))?;
    let program = match scratch.register_flow(&source).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", args.flow.display());
            return Ok(ExitCode::from(1));
        }
    };
    let report = scratch
        .shadows()
        .replay_recorded(
            &production,
            program,
            &ReplayOptions {
                perform_reads,
                since_ms,
                instance_timeout: std::time::Duration::from_secs(args.timeout),
                limit: args.limit,
            },
        )
        .await?;
    production.close();
    if report.instances == 0 {
        eprintln!(
            "no ended instance of {}/{} (other versions than {}) in {}",
            report.flow.namespace,
            report.flow.name,
            report.flow.version,
            args.store.store.display()
        );
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        replay_lines(&report);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_versions_and_decision_lists_parse() {
        assert_eq!(
            flow_version("maplewood/reroute:1.0.0").unwrap(),
            json!({"namespace": "maplewood", "flow": "reroute", "version": "1.0.0"})
        );
        assert_eq!(flow_version("reroute:2").unwrap()["namespace"], Value::Null);
        assert!(flow_version("reroute").is_err());
        assert!(flow_version(":1").is_err());
        let one = r#"{"case": "a", "inputs": {}, "decision": {}}"#;
        assert_eq!(decisions_of(one).unwrap().len(), 1);
        assert_eq!(decisions_of(&format!("[{one},{one}]")).unwrap().len(), 2);
        assert_eq!(
            decisions_of(&format!(r#"{{"decisions": [{one}], "week_from": "x"}}"#))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(decisions_of(&format!("{one}\n\n{one}\n")).unwrap().len(), 2);
        assert!(decisions_of("{nope").is_err());
        assert!(decisions_of("3").is_err());
    }
}
