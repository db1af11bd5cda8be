//! Decision records and overrides on the command line:
//!
//! - `baton decisions ID` — the records of one instance, from the embedded store or (with
//!   `--server`) a server;
//! - `baton export-decisions [--since T] [--until T] [--flow NAME]` — JSON Lines for audit;
//! - `baton override TASK --output JSON --reason R`, `baton confirm-override TASK`,
//!   `baton refuse-override TASK --reason R` — against a server, whose override policy decides;
//! - `baton overrides [--since T] [--until T]` — the override report of a server.
//!
//! Data goes to stdout, problems to stderr with their code (exit 1).

use baton_engine::Features;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use baton_core::InstanceId;
use baton_engine::decisions::{DecisionKind, DecisionRecord};
use baton_engine::explain::age_whole;
use baton_engine::{Runtime, RuntimeOptions};
use serde_json::{Value, json};

use crate::client::{ServerArgs, approval_action, call, finish, json_arg, query, time_arg};

/// Where records are read: the embedded store, or a server when `--server` is given.
#[derive(clap::Args, Clone)]
pub struct Source {
    /// The embedded store (SQLite file).
    #[arg(long, default_value = crate::DEFAULT_STORE, env = "BATON_STORE")]
    store: PathBuf,
    /// Ask a running server instead (token from BATON_TOKEN).
    #[arg(long, env = "BATON_SERVER")]
    server: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum RecordsCommand {
    /// The decision records of an instance: inputs with their sources and ages, rules that
    /// fired, outputs, approvals and overrides, flow and decision versions.
    Decisions {
        id: String,
        #[command(flatten)]
        source: Source,
    },
    /// Decision records over a period as JSON Lines (one record per line), for audit.
    ExportDecisions {
        /// Start (RFC 3339 or ms since the epoch); default 30 days before --until.
        #[arg(long)]
        since: Option<String>,
        /// End, exclusive; default now.
        #[arg(long)]
        until: Option<String>,
        /// Only instances of this flow (name).
        #[arg(long)]
        flow: Option<String>,
        #[command(flatten)]
        source: Source,
    },
    /// Override an approval task's decision with another output (a reason is required). Where
    /// the server's policy asks for a second approver, the override waits for one.
    Override {
        task: String,
        /// The output to use instead (JSON text, or @FILE).
        #[arg(long)]
        output: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Confirm, as the second approver, an override waiting on a task.
    ConfirmOverride {
        task: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Refuse, as the second approver, an override waiting on a task (a reason is required).
    RefuseOverride {
        task: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The override report of a server: overrides by flow, decision, person and reason, and
    /// the list with what each replaced, who confirmed and what it cost.
    Overrides {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A runtime over the store, for reading records (nothing is started).
async fn reader(store: &Path) -> Result<Runtime<baton_store::SqliteStore>> {
    let store = baton_store::SqliteStore::open(store, baton_store::SqliteOptions::default())
        .with_context(|| format!("cannot open the store {}", store.display()))?;
    Ok(crate::with_decide(baton_engine::runtime(
        Arc::new(store),
        RuntimeOptions::default(),
    )))
}

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => "-".into(),
        Some(x) => x.to_string(),
    }
}

fn print_record(r: &DecisionRecord) {
    let kind = match r.kind {
        DecisionKind::Rules => "rules",
        DecisionKind::Approval => "approval",
    };
    out!("{} {kind} {} ({})", r.at, r.task, r.outcome);
    out!(
        "  flow      {}/{}:{} ({})",
        r.flow.namespace,
        r.flow.name,
        r.flow.version,
        r.flow.hash
    );
    if let Some(d) = &r.decision {
        out!(
            "  decision  {} in {} (hash {})",
            text(d, "decision"),
            text(d, "file"),
            text(d, "hash")
        );
    }
    if let Some(why) = &r.inputs_unavailable {
        out!("  inputs    not available: {why}");
    }
    for i in &r.inputs {
        out!("  input     {} = {}", i.name, i.value);
        for s in &i.sources {
            out!(
                "              from {} {} at {} ({} old)",
                s.kind,
                s.source,
                s.path,
                age_whole(s.age_ms)
            );
        }
    }
    for f in &r.rules {
        out!(
            "  rule      {} #{} {}{}",
            f.table,
            f.index,
            f.id,
            f.annotation
                .as_ref()
                .map(|a| format!(": {a}"))
                .unwrap_or_default()
        );
    }
    if let Some(a) = &r.approval {
        out!(
            "  answer    {} by {} at {}{}",
            text(a, "verdict"),
            text(a, "by"),
            text(a, "at"),
            a.get("reason")
                .and_then(Value::as_str)
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
    }
    if let Some(o) = &r.override_ {
        out!(
            "  override  by {} ({}), confirmed by {}",
            text(o, "by"),
            text(o, "reason"),
            text(o, "confirmed_by")
        );
        out!("            original    {}", o["original"]);
        out!("            replacement {}", o["replacement"]);
    }
    for x in &r.refused_overrides {
        out!(
            "  refused   override by {} ({}), refused by {}: {}",
            text(x, "by"),
            text(x, "reason"),
            text(x, "refused_by"),
            text(x, "refusal_reason")
        );
    }
    if let Some(k) = &r.reviews {
        out!("  reviews   the decision {k}");
    }
    if let Some(k) = &r.reviewed_by {
        let how = r
            .review
            .as_ref()
            .map(|v| {
                format!(
                    ": {} by {}{}",
                    text(v, "verdict"),
                    text(v, "by"),
                    v.pointer("/override/confirmed_by")
                        .and_then(Value::as_str)
                        .map(|c| format!(", confirmed by {c}"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        out!("  reviewed  by the approval {k}{how}");
    }
    if let Some(c) = &r.cost {
        out!("  cost      {c}");
    }
    out!("  output    {}", r.output);
}

pub async fn run(cmd: RecordsCommand) -> Result<ExitCode> {
    match cmd {
        RecordsCommand::Decisions { id, source } => match source.server {
            Some(server) => {
                let args = ServerArgs {
                    server,
                    json: source.json,
                };
                let answer = call(
                    &args,
                    "GET",
                    &format!("/v1/instances/{id}/decisions"),
                    None,
                    None,
                )
                .await?;
                finish(&args, answer, |v| {
                    let items: Vec<DecisionRecord> =
                        serde_json::from_value(v["items"].clone()).unwrap_or_default();
                    items.iter().for_each(print_record);
                })
            }
            None => {
                let rt = reader(&source.store).await?;
                let records = rt.decisions().of(&InstanceId(id.clone())).await?;
                if source.json {
                    out!(
                        "{}",
                        serde_json::to_string_pretty(&json!({"instance": id, "items": records}))?
                    );
                } else {
                    records.iter().for_each(print_record);
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        RecordsCommand::ExportDecisions {
            since,
            until,
            flow,
            source,
        } => match source.server {
            Some(server) => {
                let args = ServerArgs { server, json: true };
                let path = format!(
                    "/v1/decisions{}",
                    query(&[("since", &since), ("until", &until), ("flow", &flow)])
                );
                let (status, body) = call(&args, "GET", &path, None, None).await?;
                if status >= 400 {
                    return finish(&args, (status, body), |_| {});
                }
                // JSON Lines are not one JSON document: the client hands the text back as is.
                match body {
                    Value::String(lines) => {
                        for l in lines.lines() {
                            out!("{l}");
                        }
                    }
                    other => out!("{other}"),
                }
                Ok(ExitCode::SUCCESS)
            }
            None => {
                let until = match &until {
                    Some(u) => time_arg("until", u)?,
                    None => baton_engine::Clock::now_ms(&baton_engine::SystemClock) + 1,
                };
                let since = match &since {
                    Some(s) => time_arg("since", s)?,
                    None => until.saturating_sub(30 * 86_400_000),
                };
                let rt = reader(&source.store).await?;
                let mut failed = None;
                // Line by line as the records are derived: the export never holds more than
                // one instance's records.
                let (_, truncated) = rt
                    .decisions()
                    .export(since, until, flow.as_deref(), 100_000, |recs| {
                        let mut go_on = true;
                        for r in recs {
                            match serde_json::to_string(&r) {
                                Ok(line) => out!("{line}"),
                                Err(e) => {
                                    failed = Some(e);
                                    go_on = false;
                                    break;
                                }
                            }
                        }
                        std::future::ready(go_on)
                    })
                    .await?;
                if let Some(e) = failed {
                    anyhow::bail!("cannot encode a decision record: {e}");
                }
                if truncated {
                    eprintln!(
                        "the export stopped at 100000 instances: narrow the period or the flow"
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        RecordsCommand::Override {
            task,
            output,
            reason,
            server,
        } => {
            let body = json!({"output": json_arg(&output)?, "reason": reason});
            let answer = call(
                &server,
                "POST",
                &format!("/v1/approvals/{task}/override"),
                Some(body),
                None,
            )
            .await?;
            finish(&server, answer, |v| {
                if let Some(p) = v.get("pending_override").filter(|p| !p.is_null()) {
                    out!(
                        "{} override by {} waits for a second approver ({})",
                        v["id"].as_str().unwrap_or("?"),
                        text(p, "by"),
                        p["second_approver"]
                    );
                } else {
                    out!(
                        "{} {} by {}: {}",
                        v["id"].as_str().unwrap_or("?"),
                        text(v, "verdict"),
                        text(v, "decided_by"),
                        text(v, "reason")
                    );
                }
            })
        }
        RecordsCommand::ConfirmOverride {
            task,
            reason,
            server,
        } => {
            approval_action(&server, &task, "override/confirm", reason.as_deref(), |v| {
                out!(
                    "{} {} by {}, confirmed by {}",
                    v["id"].as_str().unwrap_or("?"),
                    text(v, "verdict"),
                    text(v, "decided_by"),
                    text(v, "confirmed_by")
                )
            })
            .await
        }
        RecordsCommand::RefuseOverride {
            task,
            reason,
            server,
        } => {
            approval_action(&server, &task, "override/refuse", Some(&reason), |v| {
                out!(
                    "{} override refused; the task is {}",
                    v["id"].as_str().unwrap_or("?"),
                    text(v, "status")
                )
            })
            .await
        }
        RecordsCommand::Overrides {
            since,
            until,
            server,
        } => {
            let path = format!(
                "/v1/overrides/report{}",
                query(&[("since", &since), ("until", &until)])
            );
            let answer = call(&server, "GET", &path, None, None).await?;
            finish(&server, answer, |v| {
                out!(
                    "{} override(s) from {} to {}: {} in effect, {} pending, {} refused, {} lapsed",
                    v["total"],
                    text(v, "since"),
                    text(v, "until"),
                    v["effective"],
                    v["pending"],
                    v["refused"],
                    v["lapsed"]
                );
                for (title, key) in [
                    ("by flow", "by_flow"),
                    ("by decision", "by_decision"),
                    ("by person", "by_person"),
                    ("by reason", "by_reason"),
                ] {
                    out!("{title}:");
                    for g in v[key].as_array().into_iter().flatten() {
                        out!("  {:>4}  {}", g["total"], text(g, "key"));
                    }
                }
                out!("overrides:");
                for o in v["overrides"].as_array().into_iter().flatten() {
                    out!(
                        "  {} {:<9} {} / {} by {}: {}{}{}",
                        text(o, "asked_at"),
                        text(o, "status"),
                        text(o, "flow"),
                        text(o, "decision"),
                        text(o, "by"),
                        text(o, "reason"),
                        o.get("confirmed_by")
                            .and_then(Value::as_str)
                            .map(|c| format!("; confirmed by {c}"))
                            .unwrap_or_default(),
                        o.get("cost")
                            .map(|c| format!(
                                "; cost {}",
                                c.get("summary")
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                                    .unwrap_or_else(|| c.to_string())
                            ))
                            .unwrap_or_default()
                    );
                }
            })
        }
    }
}
