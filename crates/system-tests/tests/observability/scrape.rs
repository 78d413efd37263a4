//! A run through both gates, and what a scrape of both services must show
//! for the dashboard and the alerts to work (on both backends).

use myloware_testkit::JsonAnswer;
use std::collections::{BTreeMap, BTreeSet};

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use myloware_testkit::promql::{Exported, Scrape, listed_values, references, substitute};
use myloware_testkit::system::{System, start};
use serde_json::json;

#[allow(unused_imports)]
use crate::contract::*;

// ---------------------------------------------------------------------------
// A run through both gates, and what a scrape of it must show.
// ---------------------------------------------------------------------------

/// Both services' scrapes; each check returns its problems, one line each.
pub struct Check {
    pub api: Scrape,
    pub orchestrator: Scrape,
}

impl Check {
    /// The family's exports from the service(s) that should export it.
    pub fn exports(&self, family: &Family) -> Vec<(&'static str, Option<&Exported>)> {
        let api = ("api", self.api.get(family.name));
        let orchestrator = ("orchestrator", self.orchestrator.get(family.name));
        match family.exporter {
            Exporter::Api => vec![api],
            Exporter::Orchestrator => vec![orchestrator],
            Exporter::Both => vec![api, orchestrator],
        }
    }

    /// The labels a query may use on `family`: the scraped ones (the
    /// contract's for families a mock run cannot show) and the target's.
    pub fn labels_of(&self, family: &Family) -> BTreeSet<String> {
        let mut labels: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        if ABSENT_IN_MOCK_RUNS.contains(&family.name) {
            labels.extend(family.labels.iter().map(|l| l.to_string()));
        }
        for (_, exported) in self.exports(family) {
            labels.extend(exported.into_iter().flat_map(|e| e.labels.iter().cloned()));
        }
        labels
    }

    /// Every family of the contract is exported by its service(s), of its
    /// type, with exactly its labels, and enumerated labels keep to their values.
    pub fn contract(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for family in CONTRACT {
            if ABSENT_IN_MOCK_RUNS.contains(&family.name) {
                continue;
            }
            let expected_kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let expected: BTreeSet<String> = family.labels.iter().map(|l| l.to_string()).collect();
            let mut found = Vec::new();
            for (service, exported) in self.exports(family) {
                let Some(exported) = exported else {
                    found.push(format!(
                        "{} is not exported by the {service} (expected a {expected_kind} with labels {:?})",
                        family.name, family.labels
                    ));
                    continue;
                };
                if exported.kind != expected_kind {
                    found.push(format!(
                        "{} on the {service} is a {:?}, not a {expected_kind}",
                        family.name, exported.kind
                    ));
                }
                if exported.series.is_empty() {
                    found.push(format!("{} on the {service} has no series", family.name));
                } else if exported.labels != expected {
                    found.push(format!(
                        "{} on the {service} has labels {:?}, the contract says {:?}",
                        family.name, exported.labels, expected
                    ));
                }
                for series in &exported.series {
                    for (label, value) in series {
                        if let Some(values) = allowed_values(family.name, label)
                            && !values.contains(&value.as_str())
                        {
                            found.push(format!(
                                "{} on the {service} has {label}={value:?}, not one of {values:?}",
                                family.name
                            ));
                        }
                    }
                }
            }
            found.dedup();
            problems.extend(found);
        }
        problems
    }

    /// The runbook's two promises: the run's requests carry its `runId` on
    /// both services, and gate routes carry the gate's persona.
    pub fn run_series(&self, run_id: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (service, scrape) in [("api", &self.api), ("orchestrator", &self.orchestrator)] {
            let requests = scrape
                .get("http_requests_total")
                .map(|e| e.series.as_slice())
                .unwrap_or_default();
            if !requests
                .iter()
                .any(|s| s.get("runId").map(String::as_str) == Some(run_id))
            {
                problems.push(format!(
                    "no http_requests_total series of the {service} carries runId={run_id:?} (the runbook's query finds nothing there)"
                ));
            }
        }
        let requests = self
            .api
            .get("http_requests_total")
            .map(|e| e.series.clone())
            .unwrap_or_default();
        for (gate, persona) in GATE_PERSONAS.iter().filter(|(g, _)| *g != "workflow") {
            let approvals: Vec<_> = requests
                .iter()
                .filter(|s| {
                    s.get("route").map(String::as_str) == Some("/v1/hitl/approve/{runId}/{gate}")
                        && s.get("runId").map(String::as_str) == Some(run_id)
                        && s.get("gate").map(String::as_str) == Some(gate)
                })
                .collect();
            if approvals.is_empty() {
                problems.push(format!(
                    "no http_requests_total{{route=\"/v1/hitl/approve/{{runId}}/{{gate}}\", runId={run_id:?}, gate={gate:?}}} on the api"
                ));
            }
            for series in approvals {
                if series.get("persona").map(String::as_str) != Some(persona) {
                    problems.push(format!(
                        "the {gate} approval of {run_id} has persona={:?}, expected {persona:?}",
                        series.get("persona")
                    ));
                }
            }
        }
        problems
    }

    /// Every metric, label and listed value an expression uses is exported.
    pub fn expression(&self, expression: &Expression) -> Vec<String> {
        let mut problems = Vec::new();
        let text = substitute(&expression.text, ("5m", "1h"), &BTreeMap::new());
        let refs = references(&text);
        let place = &expression.place;
        if refs.selectors.is_empty() {
            problems.push(format!("{place}: no metric selector found in {text:?}"));
        }
        let mut usable: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        for (metric, matchers) in &refs.selectors {
            if metric == "up" {
                for m in matchers.iter().filter(|m| !TARGET_LABELS.contains(&m.label.as_str())) {
                    problems.push(format!("{place}: up has no label {:?}", m.label));
                }
                continue;
            }
            let (name, suffix) = family_of(metric);
            let Some(family) = family(&name) else {
                problems.push(format!("{place}: {metric} is not a metric of the services"));
                continue;
            };
            if family.kind == Kind::Histogram && suffix.is_empty() {
                problems.push(format!("{place}: {metric} is a histogram: use _bucket, _sum or _count"));
            }
            let exported = self.exports(family);
            if !ABSENT_IN_MOCK_RUNS.contains(&family.name) && exported.iter().all(|(_, e)| e.is_none()) {
                problems.push(format!("{place}: {metric} is not exported (scrape after a mock run)"));
            }
            let labels = self.labels_of(family);
            usable.extend(labels.iter().cloned());
            if suffix == "_bucket" {
                usable.insert("le".into());
            }
            for matcher in matchers {
                let known = labels.contains(&matcher.label)
                    || matcher.label == "__name__"
                    || (suffix == "_bucket" && matcher.label == "le");
                if !known {
                    problems.push(format!("{place}: {metric} has no label {:?}", matcher.label));
                    continue;
                }
                let Some(values) = listed_values(matcher) else { continue };
                if let Some(allowed) = allowed_values(family.name, &matcher.label) {
                    for value in values.iter().filter(|v| !allowed.contains(&v.as_str())) {
                        problems.push(format!(
                            "{place}: {metric}{{{}{}{value:?}}}: {value:?} is not one of {allowed:?}",
                            matcher.label, matcher.op
                        ));
                    }
                } else if matcher.label == "route" {
                    let routes: BTreeSet<&str> = exported
                        .iter()
                        .filter_map(|(_, e)| *e)
                        .flat_map(|e| e.series.iter().filter_map(|s| s.get("route").map(String::as_str)))
                        .collect();
                    for value in values.iter().filter(|v| !routes.contains(v.as_str())) {
                        problems.push(format!(
                            "{place}: route {value:?} of {metric} was not seen in a scrape (routes: {routes:?})"
                        ));
                    }
                }
            }
            if let Some(threshold) = expression.quantile_threshold
                && suffix == "_bucket"
            {
                let top = exported
                    .iter()
                    .filter_map(|(_, e)| *e)
                    .flat_map(|e| e.buckets.iter().copied())
                    .fold(f64::NAN, f64::max);
                if top.is_finite() && top < threshold {
                    problems.push(format!(
                        "{place}: the threshold {threshold} is above {name}'s largest bucket ({top}): histogram_quantile can never exceed it"
                    ));
                }
            }
        }
        for label in refs.grouping.iter().chain(expression.lists_label.iter()) {
            if !usable.contains(label) {
                problems.push(format!(
                    "{place}: label {label:?} (by/without/on or listed) is not a label of the metrics it selects"
                ));
            }
        }
        problems
    }
}

/// What the dashboard shows after ordinary use: a run through both gates
/// (returned), a run held at its first gate (so non-terminal runs show in
/// `myloware_runs_active`), a chat turn (the chat route and
/// `myloware_chat_turns_total`) and an unsigned webhook (a signature problem
/// in `webhook_events_total`).
pub async fn exercise(system: &System) -> String {
    let run_id = system.publish_aismr("u1").await;
    let waiting = system
        .start_run(json!({"project": "aismr", "input": {"object": "soap"}, "options": {"user_id": "u2"}}))
        .await;
    system.wait_status(&waiting, "awaiting_ideate", QUICK).await;
    system.chat_ok("u3", "hello").await;
    let unsigned = system
        .http
        .post(format!("{}/v1/webhooks/kieai", system.api))
        .json(&json!({"code": 200, "data": {"taskId": "t-unsigned"}}))
        .sent()
        .await;
    assert!(unsigned.status().is_client_error(), "an unsigned webhook is refused");
    run_id
}

pub async fn dashboard_and_alerts_name_exported_metrics(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = exercise(&system).await;

    let check = Check {
        api: scrape(&system, &system.api).await,
        orchestrator: scrape(&system, &system.orchestrator).await,
    };
    let mut problems = check.contract();
    problems.extend(check.run_series(&run_id));
    for expression in expressions() {
        problems.extend(check.expression(&expression));
    }
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{} problem(s) between the services' /metrics and deploy/ (OBSERVABILITY.md):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
    system.stop_idle().await;
}

conformance_tests!(dashboard_and_alerts_name_exported_metrics);
