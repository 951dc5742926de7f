//! The ladder: each step's `when`, action, disruption, verify window and rate.

use std::collections::{BTreeMap, BTreeSet};

use crate::yaml::Location;

use super::super::model::*;
use super::super::schema::*;
use super::super::units::{TIME_SYNC_UNITS, is_runtime_unit, is_time_sync_unit};
use super::*;
use crate::domain::{Dur, Problem};

pub(super) fn steps(cx: &mut Ctx, docs: &S<Vec<StepDoc>>, probes: &Probes) -> Vec<Step> {
    if docs.value.is_empty() {
        cx.err(
            at(docs),
            "steps must not be empty: the ladder needs at least one step",
        );
    }
    let mut names: BTreeMap<String, Location> = BTreeMap::new();
    let mut out: Vec<Step> = Vec::new();
    for d in &docs.value {
        let name = d.name.value.clone();
        if !step_name_ok(&name) {
            cx.err(
                at(&d.name),
                format!("step name {name:?} must be 1-63 lowercase letters, digits or '-'"),
            );
        }
        if let Some(first) = names.get(&name) {
            cx.err(
                at(&d.name),
                format!(
                    "duplicate step name {name:?} (first used at line {})",
                    first.line()
                ),
            );
        } else {
            names.insert(name.clone(), at(&d.name));
        }
        let when: BTreeSet<Problem> = d.when.value.iter().copied().collect();
        if when.is_empty() {
            cx.err(
                at(&d.when),
                format!("step {name:?}: when must name at least one problem"),
            );
        }
        let skip_when: BTreeSet<Problem> = d.skip_when.iter().copied().collect();
        if let Some(p) = when.intersection(&skip_when).next() {
            cx.err(
                at(&d.when),
                format!("step {name:?}: {p} is in both when and skipWhen"),
            );
        }

        let (action, default_disruptive, default_verify) = action(cx, &name, &d.action);
        let kind = action.kind();
        if kind != ActionKind::Report
            && let Some(p) = when.iter().find(|p| p.report_only())
        {
            cx.err(
                at(&d.when),
                format!(
                    "step {name:?}: {p} is report-only: nodewarden never remediates it (no episode, no cordon, no weight in any storm gate), so only a report step may name it; schedule its fix with `nodewarden maintenance start`"
                ),
            );
        }
        let always_disruptive = matches!(kind, ActionKind::Drain | ActionKind::Reboot);
        let disruptive = match &d.disruptive {
            Some(s) if !s.value && always_disruptive => {
                cx.err(
                    at(s),
                    format!("step {name:?}: a {kind} is always disruptive"),
                );
                true
            }
            Some(s) if !s.value && kind == ActionKind::Exec => match &action {
                Action::Exec(Exec {
                    non_disruptive_because: Some(why),
                    ..
                }) => {
                    cx.warn(
                            at(s),
                            format!("step {name:?}: nodewarden cannot judge what a command does; this exec runs without cordon, disruption slot, storm gate or reboot cap because the runbook says: {why}"),
                        );
                    false
                }
                _ => {
                    cx.err(
                            at(s),
                            format!("step {name:?}: an exec step is disruptive unless the runbook says why it is not; add exec.nonDisruptiveBecause or remove disruptive: false"),
                        );
                    true
                }
            },
            Some(s) => {
                if !s.value && kind == ActionKind::RestartContainerRuntime {
                    cx.warn(
                        at(s),
                        format!("step {name:?}: restarting the container runtime kills every container's I/O; running it without cordon is risky"),
                    );
                }
                s.value
            }
            None => default_disruptive,
        };
        let cordon = match &d.cordon {
            Some(s) if !s.value && disruptive => {
                cx.err(
                    at(s),
                    format!(
                        "step {name:?} is disruptive and must cordon first; remove cordon: false"
                    ),
                );
                true
            }
            Some(s) => s.value,
            None => disruptive,
        };
        let verify = opt_dur(&d.verify, default_verify);
        // A step that is meant to fix something must wait long enough to see it fixed.
        if !matches!(kind, ActionKind::Drain | ActionKind::Report) {
            for p in &when {
                let t = probes.timing(*p);
                if !t.enabled {
                    continue;
                }
                let need = Dur::from_std(t.ok_for.std() + t.interval.std());
                if verify < need {
                    let l = d.verify.as_ref().map(at).unwrap_or(at(&d.name));
                    cx.err(
                        l,
                        format!(
                            "step {name:?}: verify {verify} is shorter than {p}'s okFor + interval ({need}); a fix could never be seen to work"
                        ),
                    );
                    break;
                }
            }
        }
        let cooldown = match &d.cooldown {
            Some(s)
                if !s.value.is_zero()
                    && !matches!(
                        kind,
                        ActionKind::RestartUnit
                            | ActionKind::RestartContainerRuntime
                            | ActionKind::RestartTimeSync
                    ) =>
            {
                cx.err(
                    at(s),
                    format!("step {name:?}: cooldown applies only to unit restarts"),
                );
                Dur::ZERO
            }
            Some(s) => s.value,
            None => match kind {
                ActionKind::RestartUnit | ActionKind::RestartTimeSync => Dur::from_secs(60),
                ActionKind::RestartContainerRuntime => Dur::from_secs(120),
                _ => Dur::ZERO,
            },
        };
        let max_per = d.max_per.as_ref().map(|r| {
            if r.value.count == 0 {
                cx.err(
                    at(r),
                    format!("step {name:?}: maxPer.count must be at least 1"),
                );
            }
            if r.value.window.is_zero() {
                cx.err(
                    at(r),
                    format!("step {name:?}: maxPer.window must be longer than 0s"),
                );
            }
            Rate {
                count: r.value.count,
                window: r.value.window,
            }
        });

        // A reboot must come after a drain for the same problems.
        if kind == ActionKind::Reboot {
            for p in &when {
                let drained = out
                    .iter()
                    .any(|s| s.action.kind() == ActionKind::Drain && s.when.contains(p));
                if !drained {
                    cx.err(
                        at(&d.name),
                        format!(
                            "step {name:?} reboots for {p} but no earlier drain step answers {p}: pods would be killed without eviction; put a drain step before it"
                        ),
                    );
                }
            }
        }

        out.push(Step {
            name,
            when,
            skip_when,
            action,
            disruptive,
            cordon,
            verify,
            cooldown,
            max_per,
        });
    }
    out
}

/// Returns the action, whether it is disruptive by default, and its default verify window.
fn action(cx: &mut Ctx, step: &str, a: &S<ActionDoc>) -> (Action, bool, Dur) {
    let secs = Dur::from_secs;
    match &a.value {
        ActionDoc::RestartUnit(r) => {
            check_unit(cx, &r.unit);
            let u = r.unit.value.as_str();
            if valid_unit_name(u) && !u.ends_with(".service") {
                cx.err(
                    at(&r.unit),
                    format!("step {step:?}: restartUnit restarts services only; {u:?} is not a .service unit (a target like reboot.target would act without any safety gate)"),
                );
            } else if is_runtime_unit(u) {
                cx.err(
                    at(&r.unit),
                    format!("step {step:?}: {u:?} is the container runtime; restart it with restartContainerRuntime, which cordons and takes a disruption slot first"),
                );
            } else if is_time_sync_unit(u) {
                cx.err(
                    at(&r.unit),
                    format!("step {step:?}: {u:?} is a time-sync daemon; restart it with restartTimeSync"),
                );
            }
            let timeout = opt_dur(&r.timeout, secs(120));
            positive(cx, step, &r.timeout);
            (
                Action::RestartUnit(RestartUnit {
                    unit: r.unit.value.clone(),
                    timeout,
                }),
                false,
                secs(220),
            )
        }
        ActionDoc::RestartContainerRuntime(r) => {
            positive(cx, step, &r.timeout);
            if let Some(list) = &r.units {
                for u in list.value.iter().filter(|u| valid_unit_name(u)) {
                    if !u.ends_with(".service") {
                        cx.err(
                            at(list),
                            format!("step {step:?}: {u:?} is not a .service unit; a container runtime is a service"),
                        );
                    } else if is_time_sync_unit(u) || u == "kubelet.service" {
                        cx.err(
                            at(list),
                            format!("step {step:?}: {u:?} is not a container runtime; restart it with the action meant for it"),
                        );
                    }
                }
            }
            (
                Action::RestartContainerRuntime(RestartRuntime {
                    units: unit_list(cx, &r.units, &DEFAULT_RUNTIME_UNITS),
                    diagnostics: r.diagnostics.unwrap_or(true),
                    timeout: opt_dur(&r.timeout, secs(180)),
                }),
                true,
                secs(220),
            )
        }
        ActionDoc::RestartTimeSync(r) => {
            positive(cx, step, &r.timeout);
            if let Some(list) = &r.units {
                for u in list.value.iter().filter(|u| valid_unit_name(u)) {
                    if !is_time_sync_unit(u) {
                        cx.err(
                            at(list),
                            format!(
                                "step {step:?}: {u:?} is not a time-sync daemon; restartTimeSync restarts only {}",
                                TIME_SYNC_UNITS.join(", ")
                            ),
                        );
                    }
                }
            }
            (
                Action::RestartTimeSync(RestartTimeSync {
                    units: unit_list(cx, &r.units, &DEFAULT_TIME_SYNC_UNITS),
                    timeout: opt_dur(&r.timeout, secs(60)),
                }),
                false,
                secs(600),
            )
        }
        ActionDoc::Drain(d) => {
            positive(cx, step, &d.timeout);
            let concurrency = d.concurrency.as_ref().map(|c| c.value).unwrap_or(10);
            if let Some(c) = &d.concurrency
                && !(1..=100).contains(&c.value)
            {
                cx.err(
                    at(c),
                    format!("step {step:?}: drain concurrency must be 1..=100"),
                );
            }
            (
                Action::Drain(Drain {
                    mode: match d.mode {
                        None | Some(DrainModeDoc::Evict) => DrainMode::Evict,
                        Some(DrainModeDoc::Request) => DrainMode::Request,
                    },
                    timeout: opt_dur(&d.timeout, secs(600)),
                    delete_empty_dir_data: d.delete_empty_dir_data.unwrap_or(true),
                    force: d.force.unwrap_or(false),
                    ignore_daemon_sets: d.ignore_daemon_sets.unwrap_or(true),
                    grace_period: opt_dur(&d.grace_period, Dur::ZERO),
                    delete_after_deadline: d.delete_after_deadline.unwrap_or(false),
                    skip_wait_for_delete_timeout: opt_dur(
                        &d.skip_wait_for_delete_timeout,
                        DEFAULT_SKIP_WAIT_FOR_DELETE,
                    ),
                    concurrency,
                }),
                true,
                secs(30),
            )
        }
        ActionDoc::Reboot(r) => {
            positive(cx, step, &r.timeout);
            (
                Action::Reboot(Reboot {
                    timeout: opt_dur(&r.timeout, secs(900)),
                }),
                true,
                secs(600),
            )
        }
        ActionDoc::Exec(e) => {
            positive(cx, step, &e.timeout);
            match e.argv.value.first() {
                None => cx.err(at(&e.argv), format!("step {step:?}: exec argv must not be empty")),
                Some(p) if !p.starts_with('/') => cx.err(
                    at(&e.argv),
                    format!("step {step:?}: exec argv[0] {p:?} must be an absolute path (no shell, no PATH lookup)"),
                ),
                Some(_) => {}
            }
            if let Some(i) = e.argv.value.iter().position(|a| a.contains('\0')) {
                cx.err(
                    at(&e.argv),
                    format!("step {step:?}: exec argv[{i}] contains a NUL byte, which no program can receive"),
                );
            }
            if let Some(r) = &e.non_disruptive_because
                && r.value.trim().is_empty()
            {
                cx.err(
                    at(r),
                    format!(
                        "step {step:?}: nonDisruptiveBecause must say why the command is harmless"
                    ),
                );
            }
            (
                Action::Exec(Exec {
                    argv: e.argv.value.clone(),
                    timeout: opt_dur(&e.timeout, secs(600)),
                    non_disruptive_because: e
                        .non_disruptive_because
                        .as_ref()
                        .map(|r| r.value.clone()),
                }),
                true,
                secs(300),
            )
        }
        ActionDoc::Report(r)
            if r.message
                .as_ref()
                .is_some_and(|m| m.len() > MAX_REPORT_MESSAGE) =>
        {
            cx.err(
                at(a),
                format!(
                    "step {step:?}: the report message is {} bytes; at most {MAX_REPORT_MESSAGE} (it goes into Events and the ledger)",
                    r.message.as_ref().map(|m| m.len()).unwrap_or(0)
                ),
            );
            (Action::Report(Report { message: None }), false, Dur::ZERO)
        }
        ActionDoc::Report(r) => (
            Action::Report(Report {
                message: r.message.clone(),
            }),
            false,
            Dur::ZERO,
        ),
    }
}

fn positive(cx: &mut Ctx, step: &str, d: &Option<S<Dur>>) {
    if let Some(s) = d
        && s.value < MIN_TIMEOUT
    {
        cx.err(
            at(s),
            format!(
                "step {step:?}: timeout {} is too short; at least {MIN_TIMEOUT}",
                s.value
            ),
        );
    }
}
