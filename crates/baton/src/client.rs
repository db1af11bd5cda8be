//! Client verbs against a running `baton serve`: start, list, show, approve, reject, cancel,
//! send-event. The server's URL comes from `--server` (or `BATON_SERVER`), the token from
//! `BATON_TOKEN`. Data goes to stdout (`--json` prints the server's JSON as is); problems go to
//! stderr with their code, and the exit code is 1.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};

#[derive(clap::Args, Clone)]
pub struct ServerArgs {
    /// The Baton server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "BATON_SERVER")]
    pub server: String,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Start an instance of a registered flow.
    Start {
        flow: String,
        /// Input as JSON text, or @FILE.
        #[arg(long)]
        input: Option<String>,
        #[arg(long)]
        version: Option<String>,
        /// At most one instance is started per key.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List instances.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        flow: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Approve an approval task.
    Approve {
        task: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Reject an approval task (a reason is required).
    Reject {
        task: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel an instance.
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Send a CloudEvent (structured JSON, or @FILE).
    SendEvent {
        event: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub(crate) fn json_arg(s: &str) -> Result<Value> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => s.to_string(),
    };
    serde_json::from_str(&text).context("not valid JSON")
}

/// The query string of a GET (`?k=v&...`, or nothing), values percent-encoded and absent
/// ones left out. Shared by every verb that filters a server's list or report, so that a time
/// like `2026-11-16T00:00:00+01:00` reaches the server intact whichever verb sends it.
pub(crate) fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref().map(|v| {
                let enc: String = v
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                format!("{k}={enc}")
            })
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A time given to `--NAME` (RFC 3339, or milliseconds since the epoch), read the way the
/// server reads its period filters. One helper so that every verb says the same when it is not
/// a time.
pub(crate) fn time_arg(name: &str, s: &str) -> Result<u64> {
    baton_core::time::parse_time_arg(s).with_context(|| {
        format!(
            "--{name} `{s}` is not a time (RFC 3339 like 2026-11-21T00:00:00Z, or ms since the epoch)"
        )
    })
}

/// POSTs `{"reason": ...}` to an approval task's route (`/v1/approvals/TASK/ACTION`) and prints
/// the answer with `human`: approve, reject and the second approver's confirm and refuse of an
/// override all take a task and a reason and answer with the task.
pub(crate) async fn approval_action(
    server: &ServerArgs,
    task: &str,
    action: &str,
    reason: Option<&str>,
    human: impl Fn(&Value),
) -> Result<ExitCode> {
    let answer = call(
        server,
        "POST",
        &format!("/v1/approvals/{task}/{action}"),
        Some(json!({"reason": reason})),
        None,
    )
    .await?;
    finish(server, answer, human)
}

pub(crate) async fn call(
    server: &ServerArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> Result<(u16, Value)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = std::env::var("BATON_TOKEN").context("set BATON_TOKEN to an API token")?;
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let mut req = client
        .request(method.parse().context("method")?, &url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Prints the answer: problems on stderr (exit 1), data on stdout.
pub(crate) fn finish(
    server: &ServerArgs,
    (status, body): (u16, Value),
    human: impl Fn(&Value),
) -> Result<ExitCode> {
    if status >= 400 {
        eprintln!(
            "error[{}]: {}{}",
            body["code"].as_str().unwrap_or("HTTP"),
            body["title"].as_str().unwrap_or("request failed"),
            body["detail"]
                .as_str()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        if let Some(errors) = body.get("errors") {
            eprintln!("{errors}");
        }
        return Ok(ExitCode::from(1));
    }
    if server.json {
        out!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        human(&body);
    }
    Ok(ExitCode::SUCCESS)
}

fn instance_line(v: &Value) {
    out!(
        "{} {:<10} {}/{}:{}",
        v["id"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?"),
        v["flow"]["namespace"].as_str().unwrap_or(""),
        v["flow"]["name"].as_str().unwrap_or(""),
        v["flow"]["version"].as_str().unwrap_or("")
    );
}

fn task_line(v: &Value) {
    out!(
        "{} {} by {}{}",
        v["id"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?"),
        v["decided_by"].as_str().unwrap_or("-"),
        v["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
}

pub async fn run(cmd: ClientCommand) -> Result<ExitCode> {
    match cmd {
        ClientCommand::Start {
            flow,
            input,
            version,
            idempotency_key,
            server,
        } => {
            let input = input.as_deref().map(json_arg).transpose()?;
            let body = json!({"flow": flow, "version": version, "input": input});
            let answer = call(
                &server,
                "POST",
                "/v1/instances",
                Some(body),
                idempotency_key.as_deref(),
            )
            .await?;
            finish(&server, answer, instance_line)
        }
        ClientCommand::List {
            status,
            flow,
            limit,
            server,
        } => {
            let path = format!(
                "/v1/instances{}",
                query(&[
                    ("limit", &Some(limit.to_string())),
                    ("status", &status),
                    ("flow", &flow)
                ])
            );
            let answer = call(&server, "GET", &path, None, None).await?;
            finish(&server, answer, |v| {
                for it in v["items"].as_array().into_iter().flatten() {
                    instance_line(it);
                }
            })
        }
        ClientCommand::Approve {
            task,
            reason,
            server,
        } => approval_action(&server, &task, "approve", reason.as_deref(), task_line).await,
        ClientCommand::Reject {
            task,
            reason,
            server,
        } => approval_action(&server, &task, "reject", Some(&reason), task_line).await,
        ClientCommand::Cancel { id, reason, server } => {
            let answer = call(
                &server,
                "POST",
                &format!("/v1/instances/{id}/cancel"),
                Some(json!({"reason": reason})),
                None,
            )
            .await?;
            finish(&server, answer, |v| {
                out!(
                    "{} {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["status"].as_str().unwrap_or("?")
                )
            })
        }
        ClientCommand::SendEvent { event, server } => {
            let answer = call(&server, "POST", "/v1/events", Some(json_arg(&event)?), None).await?;
            finish(&server, answer, |v| {
                out!("{}", v["outcome"].as_str().unwrap_or("?"))
            })
        }
    }
}

/// `baton show ID --server URL`: the instance and its journal from a server.
pub async fn show(server: &ServerArgs, id: &str) -> Result<ExitCode> {
    let answer = call(server, "GET", &format!("/v1/instances/{id}"), None, None).await?;
    finish(server, answer, |v| {
        instance_line(&v["instance"]);
        for e in v["journal"].as_array().into_iter().flatten() {
            out!("  {} {}", e["at_ms"], e["type"].as_str().unwrap_or("?"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded_and_absent_ones_left_out() {
        assert_eq!(
            query(&[
                ("since", &Some("2026-11-16T00:00:00+01:00".into())),
                ("until", &None)
            ]),
            "?since=2026-11-16T00%3A00%3A00%2B01%3A00"
        );
        assert_eq!(query(&[("until", &None)]), "");
    }

    #[test]
    fn times_are_rfc3339_or_milliseconds() {
        assert_eq!(time_arg("since", "1500").unwrap(), 1500);
        assert_eq!(
            time_arg("since", "2026-11-21T00:00:00Z").unwrap(),
            1_795_219_200_000
        );
        let bad = time_arg("until", "yesterday").unwrap_err().to_string();
        assert!(
            bad.starts_with("--until `yesterday` is not a time"),
            "{bad}"
        );
    }
}
