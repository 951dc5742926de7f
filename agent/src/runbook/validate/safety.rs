//! `safety`: disruption slots, the storm gate, blackouts, the reboot cap.

use super::super::model::*;
use super::super::schema::*;
use super::*;
use crate::domain::Dur;

pub(super) fn safety(cx: &mut Ctx, d: SafetyDoc) -> Safety {
    let max_concurrent_disruptions = match &d.max_concurrent_disruptions {
        Some(s) if s.value == 0 || s.value > 1000 => {
            cx.err(at(s), "maxConcurrentDisruptions must be 1..=1000");
            1
        }
        Some(s) => s.value,
        None => 1,
    };
    let disruption_lease_duration = opt_dur(&d.disruption_lease_duration, Dur::from_secs(600));
    if let Some(s) = &d.disruption_lease_duration
        && s.value < Dur::from_secs(60)
    {
        cx.err(at(s), "disruptionLeaseDuration must be at least 1m");
    }
    let sg = d.storm_gate.unwrap_or_default();
    let max_unhealthy_percent = match &sg.max_unhealthy_percent {
        Some(s) if s.value > 100 => {
            cx.err(
                at(s),
                format!("maxUnhealthyPercent {} must be 0..=100", s.value),
            );
            20
        }
        Some(s) => s.value,
        None => 20,
    };
    let require_api_for_disruptive = match &d.require_api_for_disruptive {
        Some(s) if !s.value => {
            cx.err(
                at(s),
                "requireApiForDisruptive: false is not supported in v1alpha1: a disruptive step needs the API to cordon and to hold a disruption slot",
            );
            true
        }
        _ => true,
    };
    let mut blackouts = Vec::new();
    for b in d.blackouts {
        let mut days = Vec::new();
        for s in &b.days.value {
            match s.as_str() {
                "daily" | "*" => days.extend(Weekday::ALL),
                "weekdays" => days.extend(&Weekday::ALL[..5]),
                "weekends" => days.extend(&Weekday::ALL[5..]),
                other => match Weekday::parse(other) {
                    Some(w) => days.push(w),
                    None => cx.err(
                        at(&b.days),
                        format!(
                            "{other:?} is not a day; expected Mon..Sun, weekdays, weekends or daily"
                        ),
                    ),
                },
            }
        }
        days.sort();
        days.dedup();
        if days.is_empty() {
            cx.err(at(&b.days), "a blackout needs at least one day");
        }
        let from = hhmm(cx, &b.from);
        let to = hhmm(cx, &b.to);
        if from == to {
            cx.err(at(&b.to), "a blackout's from and to must differ");
        }
        let tz_name = b
            .time_zone
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_else(|| "UTC".into());
        let tz = match jiff::tz::TimeZone::get(&tz_name) {
            Ok(tz) => tz,
            Err(_) => {
                let l = b.time_zone.as_ref().map(at).unwrap_or(at(&b.from));
                cx.err(
                    l,
                    format!(
                        "unknown time zone {tz_name:?}; expected an IANA name like Europe/Berlin"
                    ),
                );
                jiff::tz::TimeZone::UTC
            }
        };
        blackouts.push(Blackout {
            name: b.name,
            days,
            from,
            to,
            time_zone: tz_name,
            tz,
        });
    }
    let reboots = match d.reboots {
        Some(r) => {
            if r.window.value.is_zero() {
                cx.err(at(&r.window), "reboots.window must be longer than 0s");
            }
            if r.max.value > 100 {
                cx.err(at(&r.max), "reboots.max must be 0..=100");
            }
            RebootCap {
                max: r.max.value,
                window: r.window.value,
            }
        }
        None => RebootCap {
            max: 1,
            window: Dur::from_secs(6 * 3600),
        },
    };
    let ox = d.on_exhausted.unwrap_or_default();
    Safety {
        max_concurrent_disruptions,
        disruption_lease_duration,
        storm_gate: StormGate {
            max_unhealthy_percent,
            max_unhealthy_nodes: sg.max_unhealthy_nodes.map(|s| s.value),
        },
        require_api_for_disruptive,
        blackouts,
        reboots,
        on_exhausted: OnExhausted {
            stay_cordoned: ox.stay_cordoned.unwrap_or(true),
            uncordon_on_recovery: ox.uncordon_on_recovery.unwrap_or(false),
        },
    }
}

fn hhmm(cx: &mut Ctx, s: &S<String>) -> u16 {
    // Exactly two digits each: "+9:00" or " 9:00" is not a time of day.
    let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
    let parsed = s.value.split_once(':').and_then(|(h, m)| {
        if !two_digits(h) || !two_digits(m) {
            return None;
        }
        let h: u16 = h.parse().ok()?;
        let m: u16 = m.parse().ok()?;
        (h < 24 && m < 60).then_some(h * 60 + m)
    });
    match parsed {
        Some(v) => v,
        None if s.value == "24:00" => 24 * 60,
        None => {
            cx.err(
                at(s),
                format!(
                    "{:?} is not a time of day; expected HH:MM, like 09:00",
                    s.value
                ),
            );
            0
        }
    }
}
