//! Which systemd version understands each line of nodewarden's unit files.
//!
//! The base unit (`systemd/nodewarden.service`) must load on systemd 219 (EL7); every
//! drop-in under `systemd/dropins/` declares the version it needs in a header line
//! `# nodewarden-requires-systemd: N`, which `systemd/select-dropins.sh` compares with
//! `systemctl --version` at install time. [`VERSIONS`] is the table those numbers come
//! from: per directive (and per value where a value came later than its directive), the
//! systemd release that introduced it. A directive that is not in the table is an error,
//! so a new line cannot slip into a unit without someone writing down its version.
//!
//! Sources: systemd's NEWS (the release that announced each setting) and the
//! "Added in version N" notes of the systemd man pages (systemd.exec(5),
//! systemd.service(5), systemd.unit(5), systemd.resource-control(5)). Where a release
//! number was not certain, the later candidate is written: an overstated number only
//! withholds a drop-in from a node that could have had it; an understated one breaks the
//! node. [`OLD`] marks settings that predate every systemd this project supports (they
//! are in systemd 209's man pages; EL7 ships 219).

use std::collections::BTreeMap;

/// Older than any supported systemd (documented in systemd 209).
pub const OLD: u32 = 209;

/// The oldest systemd the base unit must load on: EL7.
pub const BASE_FLOOR: u32 = 219;

/// `(section, directive, version)`: the release that introduced the directive.
pub const VERSIONS: &[(&str, &str, u32)] = &[
    ("Unit", "Description", OLD),
    ("Unit", "Documentation", OLD),
    ("Unit", "Wants", OLD),
    ("Unit", "After", OLD),
    ("Unit", "Before", OLD),
    ("Unit", "Requires", OLD),
    // 230 moved the start rate limit to [Unit] under this name.
    ("Unit", "StartLimitIntervalSec", 230),
    ("Unit", "StartLimitBurst", 230),
    ("Service", "Type", OLD),
    ("Service", "NotifyAccess", OLD),
    ("Service", "ExecStart", OLD),
    ("Service", "ExecReload", OLD),
    ("Service", "Environment", OLD),
    ("Service", "EnvironmentFile", OLD),
    ("Service", "Restart", OLD),
    ("Service", "RestartSec", OLD),
    // the [Service] spelling before 230; later versions still accept it
    ("Service", "StartLimitInterval", OLD),
    ("Service", "WatchdogSec", OLD),
    ("Service", "TimeoutStartSec", OLD),
    ("Service", "TimeoutStopSec", OLD),
    ("Service", "KillMode", OLD),
    ("Service", "OOMScoreAdjust", OLD),
    ("Service", "UMask", OLD),
    ("Service", "PrivateTmp", OLD),
    ("Service", "NoNewPrivileges", OLD),
    ("Service", "SystemCallFilter", OLD),
    ("Service", "SystemCallArchitectures", OLD),
    ("Service", "SystemCallErrorNumber", OLD),
    ("Service", "PrivateDevices", OLD),
    ("Service", "RestrictAddressFamilies", 211),
    ("Service", "ProtectSystem", 214),
    ("Service", "ProtectHome", 214),
    ("Service", "TasksMax", 228),
    ("Service", "MemoryHigh", 231),
    ("Service", "MemoryMax", 231),
    ("Service", "ReadWritePaths", 231),
    ("Service", "RestrictRealtime", 231),
    ("Service", "MemoryDenyWriteExecute", 231),
    ("Service", "ProtectKernelTunables", 232),
    ("Service", "ProtectKernelModules", 232),
    ("Service", "ProtectControlGroups", 232),
    ("Service", "RestrictNamespaces", 233),
    ("Service", "StateDirectory", 235),
    ("Service", "StateDirectoryMode", 235),
    ("Service", "ConfigurationDirectory", 235),
    ("Service", "LockPersonality", 235),
    ("Service", "ProtectHostname", 242),
    ("Service", "RestrictSUIDSGID", 242),
    ("Service", "ProtectKernelLogs", 244),
    ("Service", "ProtectClock", 245),
    ("Install", "WantedBy", OLD),
];

/// `(directive, value, version)`: values newer than their directive. For
/// `SystemCallFilter=` the value is a `@group` named anywhere in the line.
pub const VALUE_VERSIONS: &[(&str, &str, u32)] = &[
    ("KillMode", "mixed", OLD),
    ("ProtectSystem", "strict", 232),
    ("ProtectHome", "tmpfs", 242),
    ("SystemCallFilter", "@mount", 231),
    ("SystemCallFilter", "@raw-io", 231),
    ("SystemCallFilter", "@obsolete", 231),
    ("SystemCallFilter", "@swap", 232),
    ("SystemCallFilter", "@reboot", 232),
    ("SystemCallFilter", "@system-service", 239),
];

/// One `Key=value` line of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub section: String,
    pub key: String,
    pub value: String,
}

/// The assignments of a unit file or drop-in, and the version its header declares.
#[derive(Debug, Clone, Default)]
pub struct UnitFile {
    pub lines: Vec<Line>,
    pub requires: Option<u32>,
}

/// Parse a unit file: sections, `Key=value` lines (comments and blank lines skipped;
/// line continuations are not used by these files and are rejected).
pub fn parse(text: &str) -> Result<UnitFile, String> {
    let mut out = UnitFile::default();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let l = raw.trim();
        if let Some(v) = l.strip_prefix("# nodewarden-requires-systemd:") {
            let v = v
                .trim()
                .parse::<u32>()
                .map_err(|e| format!("line {n}: bad version header: {e}"))?;
            out.requires = Some(v);
            continue;
        }
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if l.ends_with('\\') {
            return Err(format!("line {n}: line continuations are not supported"));
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("line {n}: not a Key=value line: {l:?}"))?;
        if section.is_empty() {
            return Err(format!("line {n}: {k}= outside any section"));
        }
        out.lines.push(Line {
            number: n,
            section: section.clone(),
            key: k.trim().to_string(),
            value: v.trim().to_string(),
        });
    }
    Ok(out)
}

/// The systemd version a line needs, or an error naming a directive the table lacks.
pub fn line_version(l: &Line) -> Result<u32, String> {
    let table: BTreeMap<(&str, &str), u32> =
        VERSIONS.iter().map(|(s, k, v)| ((*s, *k), *v)).collect();
    let base = *table
        .get(&(l.section.as_str(), l.key.as_str()))
        .ok_or_else(|| {
            format!(
                "line {}: [{}] {}= is not in packaging/check/src/unit.rs VERSIONS: add it with \
                 the systemd version that introduced it",
                l.number, l.section, l.key
            )
        })?;
    let mut need = base;
    for (k, v, ver) in VALUE_VERSIONS {
        if *k != l.key {
            continue;
        }
        let hit = if k == &"SystemCallFilter" {
            l.value
                .trim_start_matches('~')
                .split_whitespace()
                .any(|w| w == *v)
        } else {
            l.value == *v
        };
        if hit {
            need = need.max(*ver);
        }
    }
    if l.key == "SystemCallFilter" {
        for g in l
            .value
            .trim_start_matches('~')
            .split_whitespace()
            .filter(|w| w.starts_with('@'))
        {
            if !VALUE_VERSIONS
                .iter()
                .any(|(k, v, _)| *k == "SystemCallFilter" && v == &g)
            {
                return Err(format!(
                    "line {}: SystemCallFilter group {g} is not in VALUE_VERSIONS: add it with \
                     the systemd version that introduced it",
                    l.number
                ));
            }
        }
    }
    Ok(need)
}

/// The highest version any line of `f` needs, with the line that needs it.
pub fn needs(f: &UnitFile) -> Result<(u32, Option<Line>), String> {
    let mut best = (0, None);
    for l in &f.lines {
        let v = line_version(l)?;
        if v > best.0 {
            best = (v, Some(l.clone()));
        }
    }
    Ok(best)
}
