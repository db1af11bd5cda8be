//! Shadow diffs (`/ui/shadows`): every shadow registration with its agreement, and one
//! shadow's report over a period: differences per field and each differing case with the rules
//! that fired. The same report as `GET /v1/shadows/{name}/report`.

use baton_engine::Features;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use baton_engine::shadow::{LiveSide, Registration, Report};

use super::{Nav, Session, UiError, compact, render, time};
use crate::AppState;
use crate::api::Path;
use crate::api::shadows::{PeriodFilter, report_of};

/// Characters of a value shown in a cell before it is cut.
const VALUE_MAX: usize = 80;
/// Characters of a case's input shown before it is cut.
const INPUT_MAX: usize = 400;
/// Differing cases listed on one page.
const CASES_SHOWN: usize = 500;

pub(crate) struct ShadowRow {
    pub name: String,
    pub candidate: String,
    pub live: String,
    pub cases: u64,
    pub compared: u64,
    pub agreed: u64,
    pub rate: String,
    /// When it was stopped (no new cases since), if it was.
    pub stopped: Option<String>,
}

pub(crate) struct DiffRow {
    pub case: String,
    pub input: String,
    pub at: String,
    pub field: String,
    pub live: String,
    pub shadow: String,
    pub shadow_why: Vec<String>,
    pub live_why: Vec<String>,
    pub shadow_instance: Option<String>,
    pub live_instance: Option<String>,
}

#[derive(Template)]
#[template(path = "shadows.html")]
struct ShadowsPage {
    nav: Nav,
    rows: Vec<ShadowRow>,
    /// The shadow whose report is shown, with its rows.
    report: Option<ShadowRow>,
    fields: Vec<(String, u64)>,
    diffs: Vec<DiffRow>,
    more: usize,
    since: String,
    until: String,
    not_performed: u64,
}

fn live_text(live: &LiveSide) -> String {
    match live {
        LiveSide::Flow {
            namespace,
            name,
            version,
        } => format!("{namespace}/{name}:{version}"),
        LiveSide::Legacy { system } => format!("legacy: {system}"),
    }
}

fn row(reg: &Registration, report: &Report) -> ShadowRow {
    let c = &reg.candidate;
    ShadowRow {
        name: reg.name.clone(),
        candidate: format!("{}/{}:{}", c.namespace, c.name, c.version),
        live: live_text(&reg.live),
        cases: report.cases,
        compared: report.compared,
        agreed: report.agreed,
        rate: report
            .agreement_rate
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "–".into()),
        stopped: reg.retired_at_ms.map(|t| {
            format!(
                "{} by {}",
                time(t),
                reg.retired_by.as_deref().unwrap_or("?")
            )
        }),
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

async fn page(
    state: &AppState,
    session: &Session,
    name: Option<&str>,
    f: &PeriodFilter,
) -> Result<ShadowsPage, UiError> {
    let shadows = state.runtime.shadows();
    let regs = shadows.list().await.map_err(crate::ApiError::from)?;
    let mut rows = Vec::new();
    let mut page = ShadowsPage {
        nav: session.nav("shadows"),
        rows: Vec::new(),
        report: None,
        fields: Vec::new(),
        diffs: Vec::new(),
        more: 0,
        since: f.since.clone().unwrap_or_default(),
        until: f.until.clone().unwrap_or_default(),
        not_performed: 0,
    };
    for reg in &regs {
        let chosen = name == Some(reg.name.as_str());
        let report = if chosen {
            report_of(state, &reg.name, f).await?
        } else {
            shadows
                .report(&reg.name, None, None)
                .await
                .map_err(crate::ApiError::from)?
        };
        let r = row(reg, &report);
        if chosen {
            page.report = Some(row(reg, &report));
            page.fields = report.fields.clone().into_iter().collect();
            page.not_performed = report.effects_not_performed;
            page.more = report.differences.len().saturating_sub(CASES_SHOWN);
            for d in report.differences.iter().take(CASES_SHOWN) {
                for field in &d.differences {
                    page.diffs.push(DiffRow {
                        case: d.case.clone(),
                        input: compact(&d.input, INPUT_MAX),
                        at: time(d.at_ms),
                        field: field.field.clone(),
                        live: compact(&field.live, VALUE_MAX),
                        shadow: compact(&field.shadow, VALUE_MAX),
                        shadow_why: strings(&d.why["shadow"]),
                        live_why: strings(&d.why["live"]),
                        shadow_instance: d.shadow_instance.clone(),
                        live_instance: d.live_instance.clone(),
                    });
                }
            }
        }
        rows.push(r);
    }
    if let Some(n) = name
        && page.report.is_none()
    {
        return Err(crate::ApiError::not_found(format!("shadow {n}")).into());
    }
    page.rows = rows;
    Ok(page)
}

/// `GET /ui/shadows`.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, UiError> {
    Ok(render(
        &page(&state, &session, None, &PeriodFilter::default()).await?,
    ))
}

/// `GET /ui/shadows/{name}?since=&until=`.
pub(crate) async fn detail(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(name): Path<String>,
    Query(f): Query<PeriodFilter>,
) -> Result<Response, UiError> {
    Ok(render(&page(&state, &session, Some(&name), &f).await?))
}
