//! The report as text for people: what was uploaded, what Secoda said, which tests did not pass.
//!
//! One labelled section per step that happened, each rendered by its own function; colour only
//! where the [`Paint`] allows. Errors and hints are not rendered here: they go to stderr.

use std::fmt::Write;

use super::{Outcome, Plan, Report, SecodaAnswer, TestSummary};
use crate::artifacts::{Level, TestResult};
use crate::style::Paint;
use crate::units::{count, format_duration, human_bytes};

const LABEL: usize = 10;
const INDENT: &str = "          ";

fn label(p: Paint, name: &str) -> String {
    p.bold(&format!("{name:<LABEL$}"))
}

/// Renders `report` for a terminal or a CI log.
pub fn render(report: &Report, p: Paint) -> String {
    let mut out = String::new();
    secoda(&mut out, report, p);
    dbt(&mut out, report, p);
    if let Some(plan) = &report.plan {
        render_plan(&mut out, plan, p);
    }
    uploaded(&mut out, report, p);
    sync(&mut out, report, p);
    if let Some(answer) = &report.secoda {
        render_answer(&mut out, answer, p);
    }
    if let (Some(why), Some(_)) = (report.not_waited, &report.trigger) {
        let _ = writeln!(out, "{}{}", label(p, "Answer"), p.dim(why.explain()));
    }
    if let Some(summary) = &report.test_summary {
        tests(&mut out, report, summary, p);
    }
    disagreements(&mut out, report, p);
    for warning in &report.warnings {
        let _ = writeln!(out, "{}{}", label(p, "Warning"), p.yellow(warning));
    }
    if out.is_empty() {
        // Stopped before anything happened: the error on stderr says it all.
        return out;
    }
    verdict(&mut out, report, p);
    out
}

fn secoda(out: &mut String, report: &Report, p: Paint) {
    if let Some(root) = &report.api_root {
        let id = report.integration_id.as_deref().unwrap_or("?");
        let _ = writeln!(out, "{}{root} · integration {id}", label(p, "Secoda"));
    }
}

fn dbt(out: &mut String, report: &Report, p: Paint) {
    let Some(dbt) = &report.dbt else { return };
    let command = dbt
        .invocation_command
        .clone()
        .or_else(|| dbt.command.as_ref().map(|c| format!("dbt {c}")));
    let _ = writeln!(
        out,
        "{}{} (dbt {}) · invocation {}",
        label(p, "dbt"),
        command.as_deref().unwrap_or("(command unknown)"),
        dbt.version.as_deref().unwrap_or("?"),
        report.invocation_id.as_deref().unwrap_or("?")
    );
}

fn render_plan(out: &mut String, plan: &Plan, p: Paint) {
    let _ = writeln!(
        out,
        "{}nothing sent (--dry-run); the upload would be:",
        label(p, "Plan")
    );
    for file in [&plan.run_results, &plan.manifest] {
        let _ = writeln!(
            out,
            "{INDENT}{}  {}  sha256 {}",
            file.path,
            human_bytes(file.bytes),
            file.sha256.as_deref().unwrap_or("?")
        );
    }
    let get = &plan.failing_tests;
    let _ = writeln!(
        out,
        "{INDENT}1. {get}  (checks the key and integration before any file is sent)"
    );
    let _ = writeln!(
        out,
        "{INDENT}2. {}  (multipart: run_results, manifest)",
        plan.upload
    );
    let _ = writeln!(
        out,
        "{INDENT}3. {}  (retried while a sync is running)",
        plan.trigger
    );
    if plan.waits {
        let _ = writeln!(
            out,
            "{INDENT}4. {get}  (the answer as the sync starts, then polled until it settles)"
        );
    }
}

fn uploaded(out: &mut String, report: &Report, p: Paint) {
    let Some(up) = &report.uploaded else { return };
    let schema = |s: Option<&str>| s.map(|s| format!(" ({s})")).unwrap_or_default();
    let dbt = report.dbt.as_ref();
    let _ = writeln!(
        out,
        "{}run_results.json {}{} + manifest.json {}{} in {}, {}",
        label(p, "Uploaded"),
        human_bytes(up.run_results.bytes),
        schema(dbt.map(|d| d.run_results_schema.as_str())),
        human_bytes(up.manifest.bytes),
        schema(dbt.map(|d| d.manifest_schema.as_str())),
        format_duration(up.seconds),
        count(up.attempts, "attempt")
    );
}

fn sync(out: &mut String, report: &Report, p: Paint) {
    let Some(trigger) = &report.trigger else {
        return;
    };
    let detail = match trigger.conflicts {
        0 => "at once".to_string(),
        n => format!(
            "after {n} × 409 (a sync was already running), {} of waiting",
            format_duration(trigger.waited)
        ),
    };
    let _ = writeln!(out, "{}dbt sync triggered {detail}", label(p, "Sync"));
}

fn render_answer(out: &mut String, answer: &SecodaAnswer, p: Paint) {
    let sure = match answer.confidence {
        crate::settle::Confidence::High => String::new(),
        crate::settle::Confidence::Medium => p.yellow(" (confidence: medium)"),
    };
    let _ = writeln!(
        out,
        "{}answer settled after {} ({}): {}{sure}",
        label(p, "Answer"),
        count(answer.polls, "poll"),
        format_duration(answer.waited),
        answer.settled_by.explain()
    );
    if answer.failing.is_empty() && answer.warning.is_empty() {
        let _ = writeln!(
            out,
            "{INDENT}{}",
            p.green("no entities with failing or warning tests")
        );
    }
    for (name, list, tag) in [
        ("failing", &answer.failing, p.red("failing")),
        ("warning", &answer.warning, p.yellow("warning")),
    ] {
        for (i, entity) in list.iter().enumerate() {
            let tag = if i == 0 {
                tag.clone()
            } else {
                " ".repeat(name.len())
            };
            let _ = writeln!(out, "{INDENT}{tag}  {entity}");
        }
    }
}

fn tests(out: &mut String, report: &Report, summary: &TestSummary, p: Paint) {
    let command = report
        .dbt
        .as_ref()
        .and_then(|d| d.command.clone())
        .unwrap_or_else(|| "this command".into());
    if !summary.has_outcomes {
        let _ = writeln!(
            out,
            "{}dbt {command} writes no test outcomes: {} were compiled, not run",
            label(p, "Tests"),
            count(summary.total, "test")
        );
        return;
    }
    if summary.total == 0 {
        let _ = writeln!(
            out,
            "{}no tests ran in this dbt {command}",
            label(p, "Tests")
        );
    } else {
        let others: u64 = summary.other_nodes.values().sum();
        let others = if others > 0 {
            p.dim(&format!("  (and {})", count(others, "other node")))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{}{}: {}{others}",
            label(p, "Tests"),
            count(summary.total, "test"),
            status_counts(summary).join(", ")
        );
    }
    for test in &report.tests {
        render_test(out, test, p);
    }
    if summary.not_listed > 0 {
        let _ = writeln!(
            out,
            "  {}",
            p.dim(&format!(
                "… and {} more tests that did not pass",
                summary.not_listed
            ))
        );
    }
}

/// "33 pass, 3 fail, 1 error": pass first, then by severity, then whatever else dbt wrote.
fn status_counts(summary: &TestSummary) -> Vec<String> {
    let rank = |status: &str| match status {
        "pass" | "success" => 0,
        "fail" => 1,
        "error" | "runtime error" => 2,
        "warn" => 3,
        "skipped" => 4,
        _ => 5,
    };
    let mut by_status: Vec<(&String, &u64)> = summary.by_status.iter().collect();
    by_status.sort_by_key(|(status, _)| rank(status));
    by_status
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect()
}

fn render_test(out: &mut String, test: &TestResult, p: Paint) {
    let tag = match test.level {
        Level::Failing => p.red(&format!("{:<6}", test.status.to_uppercase())),
        Level::Warning => p.yellow("WARN  "),
        Level::Skipped => p.dim("SKIP  "),
        _ => format!("{:<6}", test.status.to_uppercase()),
    };
    let _ = writeln!(out, "  {tag} {}", test.unique_id);
    let mut facts = Vec::new();
    if let Some(file) = &test.file {
        facts.push(file.clone());
    }
    if let Some(entity) = &test.entity {
        facts.push(format!("tests {entity}"));
    }
    if let Some(n) = test.failures.filter(|n| *n > 0) {
        facts.push(format!("{} failing", count(n, "row")));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "         {}", p.dim(&facts.join(" · ")));
    }
    let Some(message) = test
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    else {
        return;
    };
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    for line in lines.iter().take(3) {
        let _ = writeln!(out, "         {line}");
    }
    if lines.len() > 3 {
        let _ = writeln!(
            out,
            "         {}",
            p.dim(&format!("… ({} more lines)", lines.len() - 3))
        );
    }
}

fn disagreements(out: &mut String, report: &Report, p: Paint) {
    let Some(d) = &report.disagreements else {
        return;
    };
    let _ = writeln!(
        out,
        "{}Secoda's answer and the local run_results differ:",
        label(p, "Differ")
    );
    for (what, list) in [
        ("failing in Secoda only", &d.failing_only_in_secoda),
        ("failing locally only", &d.failing_only_in_local),
        ("warning in Secoda only", &d.warning_only_in_secoda),
        ("warning locally only", &d.warning_only_in_local),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "{INDENT}{what}: {}", list.join(", "));
        }
    }
}

fn verdict(out: &mut String, report: &Report, p: Paint) {
    let verdict = match report.result {
        Outcome::Success => p.green("OK"),
        Outcome::DryRun => p.green("OK: the artifacts are valid; nothing was sent"),
        Outcome::TestsFailed => p.red(&format!("FAILED: {}", report.failure_reasons())),
        Outcome::Error => {
            let first = report
                .error
                .as_ref()
                .and_then(|e| e.message.lines().next())
                .unwrap_or("see stderr");
            p.red(&format!("ERROR: {first}"))
        }
    };
    let _ = writeln!(
        out,
        "{}{verdict} (exit {})",
        label(p, "Result"),
        report.exit_code
    );
}
