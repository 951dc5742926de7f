//! Idle footprint of the real `nodewarden run` binary (issue 15): the default runbook, only
//! its endpoints pointed at local fakes (a kubelet healthz server, a Docker Engine API on a
//! unix socket, `tests/fakeapi` as the API server, with the node Ready and its Lease renewed
//! every 10 s as a kubelet does), so every probe does its real work: HTTP to healthz and
//! Docker (`/_ping`, `/containers/json`, `/info`), `journalctl` children for PLEG, /proc,
//! /dev/kmsg, os-release, the dpkg database, and the two watches; #16's drift probes read
//! /proc/swaps, the sysctls, a KubeletConfiguration (found through a process named
//! `kubelet`, as on a node without systemd), the kubelet's two certificates and statvfs of
//! the nodefs/imagefs paths. One `nodewarden check` round at the end prints each verdict. D-Bus goes to whatever system bus this machine has (none in a
//! container: the systemd calls then fail fast, which is cheaper than the real thing).
//!
//! Prints: CPU of the agent and of its children separately (`/proc/PID/stat` utime+stime,
//! cutime+cstime), per thread; peak and steady RSS split into anonymous and file-backed
//! (`/proc/PID/status`); API requests per minute by kind (the fake API's request log); the
//! binary size (as built and stripped). Asserts no thresholds (machines are shared and
//! noisy): it fails only when a figure could not be produced.
//!
//! ```text
//! cargo bench -p nodewarden --bench footprint                 # release build, 120 s
//! cargo bench --profile dev -p nodewarden --bench footprint -- --short   # dev build, 60 s (CI)
//! NODEWARDEN_FOOTPRINT_BIN=/path/to/nodewarden NODEWARDEN_FOOTPRINT_SECS=300 cargo bench ...
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nodewarden::probe::testing::{Mode, docker_server, healthz_server};
use nodewarden_fakeapi::{FakeApi, Kind};
use serde_json::json;

// the kubelet's certificates, made as the e2e tests make them (rcgen, a throw-away CA)
#[allow(dead_code)]
#[path = "../tests/cluster/pki.rs"]
mod pki;

const NODE: &str = "footprint-node";
/// Start-up (first rounds, watches opened) is reported apart from the steady state.
const WARMUP: Duration = Duration::from_secs(10);
/// The daemon hands start-up's memory back a minute after start (`host/resident.rs`): RSS
/// from then on is the idle figure.
const SETTLED: Duration = Duration::from_secs(70);

/// utime, stime, cutime, cstime in clock ticks (fields 14-17 of `/proc/PID/stat`).
fn cpu_ticks(stat_path: &Path) -> Option<[u64; 4]> {
    let s = std::fs::read_to_string(stat_path).ok()?;
    // the command name is in parentheses and may hold spaces: split after the last ')'
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state), so field N is f[N - 3]
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some([n(14)?, n(15)?, n(16)?, n(17)?])
}

/// kB values of `/proc/PID/status` lines.
fn status_kb(pid: u32) -> BTreeMap<String, u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let v = v.trim().strip_suffix(" kB")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// CPU ticks per thread name (`/proc/PID/task/*/stat`, utime+stime).
fn thread_ticks(pid: u32) -> BTreeMap<String, (u64, usize)> {
    let mut out: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if let Some([u, s, _, _]) = cpu_ticks(&e.path().join("stat")) {
            let slot = out.entry(name.trim().to_string()).or_default();
            slot.0 += u + s;
            slot.1 += 1;
        }
    }
    out
}

/// USER_HZ, the unit of `/proc/PID/stat` times (100 on every mainstream Linux ABI).
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

fn ms(ticks: u64, tck: f64) -> f64 {
    ticks as f64 * 1000.0 / tck
}

/// `ms` of CPU over `secs` of wall time as a percentage of one core.
fn pct(ms: f64, secs: f64) -> String {
    format!("{:.3} %", ms / (secs * 1000.0) * 100.0)
}

struct Sample {
    at: Duration,
    ticks: [u64; 4],
    anon: u64,
    file: u64,
    rss: u64,
}

fn sample(pid: u32, t0: Instant) -> Option<Sample> {
    let ticks = cpu_ticks(Path::new(&format!("/proc/{pid}/stat")))?;
    let st = status_kb(pid);
    Some(Sample {
        at: t0.elapsed(),
        ticks,
        anon: *st.get("RssAnon")?,
        file: *st.get("RssFile")?,
        rss: *st.get("VmRSS")?,
    })
}

/// The default runbook, its endpoints pointed at the fakes and its file settings at the
/// node files in `node` (see `node_files`).
fn runbook(healthz: &str, docker_sock: &Path, node: &Path, proc_root: &Path) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runbooks/default.yaml"
    ))
    .expect("runbooks/default.yaml");
    let at = |p: &str| node.join(p).display().to_string();
    let mut out = text;
    for (from, to) in [
        ("http://127.0.0.1:10248/healthz", healthz.to_string()),
        ("runtime: auto", "runtime: docker".to_string()),
        ("/var/run/docker.sock", docker_sock.display().to_string()),
        (
            "nodefsPaths: [/var/lib/kubelet, /var/log]",
            format!("nodefsPaths: [{}, /var/log]", at("kubelet")),
        ),
        (
            "imagefsPaths: [/var/lib/containerd, /var/lib/docker, /var/lib/containers]",
            format!("imagefsPaths: [{}]", at("docker")),
        ),
    ] {
        assert!(out.contains(from), "default runbook no longer has {from:?}");
        out = out.replace(from, &to);
    }
    // KernelPrerequisitesMissing reads each sysctl; expect what this machine has, so the
    // bench node is healthy (a finding would add its Event and condition PATCH). One that
    // is absent here (br_netfilter not loaded) is swapped for one that exists, so the
    // probe still reads as many files.
    let mut spare = ["net.ipv4.conf.all.forwarding", "net.ipv4.ip_default_ttl"].into_iter();
    let mut lines: Vec<String> = Vec::new();
    for l in out.lines() {
        let Some((_, rest)) = l.split_once("- {name: ") else {
            lines.push(l.to_string());
            continue;
        };
        let name = rest.split(',').next().unwrap_or_default();
        let read = |n: &str| {
            std::fs::read_to_string(proc_root.join("sys").join(n.replace('.', "/")))
                .ok()
                .map(|v| v.trim().to_string())
        };
        let (name, value) = match read(name) {
            Some(v) => (name.to_string(), v),
            None => {
                let n = spare.next().expect("a spare sysctl");
                (n.to_string(), read(n).expect("a spare sysctl readable"))
            }
        };
        let indent = &l[..l.find('-').unwrap_or(0)];
        lines.push(format!("{indent}- {{name: {name}, value: \"{value}\"}}"));
    }
    assert!(
        lines.iter().filter(|l| l.contains("- {name: ")).count() >= 3,
        "the default runbook's sysctls moved"
    );
    lines.join("\n") + "\n"
}

/// The node files the drift probes read, as kubeadm lays them out: the KubeletConfiguration
/// (`drift_fixtures/kubelet-config-cgroupfs.yaml`: cgroupfs like the Docker fake's `/info`,
/// failSwapOn true; evictionHard in sizes, below), the kubelet's client certificate (with
/// its key, named by kubeadm's `kubelet.conf`) and its self-signed serving certificate in
/// its `--cert-dir`, valid from yesterday for a year, and the nodefs and imagefs directories.
fn node_files(node: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(node.join("pki"))?;
    std::fs::create_dir_all(node.join("kubelet"))?;
    std::fs::create_dir_all(node.join("docker"))?;
    let config = node.join("kubelet/config.yaml");
    // evictionHard in absolute sizes: the kubelet's percentage defaults would call a shared
    // build machine's disk (often 80 % full) nearly full, and the bench node must be healthy
    let text = include_str!("../src/probe/drift_fixtures/kubelet-config-cgroupfs.yaml");
    let from = "  imagefs.available: \"20%\"\n  nodefs.available: 1Gi\n";
    assert!(text.contains(from), "kubelet-config-cgroupfs.yaml changed");
    let text = text.replace(
        from,
        "  imagefs.available: 1Gi\n  nodefs.available: 1Gi\n  nodefs.inodesFree: 1%\n",
    );
    std::fs::write(&config, text)?;
    let day = |d: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * d))
            .expect("date")
            .strftime("%Y-%m-%d")
            .to_string()
    };
    let cn = format!("system:node:{NODE}");
    std::fs::write(
        node.join("pki/kubelet-client-current.pem"),
        pki::cert_pem(&cn, &day(-1), &day(365)),
    )?;
    std::fs::write(
        node.join("pki/kubelet.crt"),
        pki::self_signed_pem(NODE, &day(-1), &day(365)),
    )?;
    // kubeadm's kubelet.conf: its user's client certificate is the rotated pair
    let client = node.join("pki/kubelet-client-current.pem");
    std::fs::write(
        node.join("kubelet.conf"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default-cluster\n\
             contexts:\n- context:\n    cluster: default-cluster\n    user: default-auth\n  name: default-context\n\
             current-context: default-context\nusers:\n- name: default-auth\n  user:\n    client-certificate: {c}\n    client-key: {c}\n",
            c = client.display()
        ),
    )?;
    Ok(config)
}

/// A process named `kubelet` whose command line names the config file, its kubeconfig and
/// its certificate directory, as the kubelet's does (kubeadm): with no systemd to give the unit's main pid, the probes find the kubelet by its
/// `comm` in /proc and read `--config` from its cmdline (`kubelet_invocation.rs`). A shell
/// script: the kernel names a script's process after the script, and `read` blocks on a
/// pipe that stays open until the bench ends (or drops it), so it costs nothing.
fn fake_kubelet(node: &Path, config: &Path) -> std::io::Result<std::process::Child> {
    let script = node.join("bin/kubelet");
    std::fs::create_dir_all(node.join("bin"))?;
    std::fs::write(&script, "#!/bin/sh\nread -r _\n")?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let node_dir = config
        .parent()
        .and_then(Path::parent)
        .expect("config under node/kubelet");
    Command::new(&script)
        .arg(format!("--config={}", config.display()))
        .arg(format!(
            "--kubeconfig={}",
            node_dir.join("kubelet.conf").display()
        ))
        .arg(format!("--cert-dir={}", node_dir.join("pki").display()))
        .stdin(Stdio::piped())
        .spawn()
}

fn stripped_size(bin: &Path, dir: &Path) -> Option<u64> {
    let copy = dir.join("nodewarden.stripped");
    std::fs::copy(bin, &copy).ok()?;
    let ok = Command::new("strip").arg(&copy).status().ok()?.success();
    if !ok {
        return None;
    }
    std::fs::metadata(&copy).ok().map(|m| m.len())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; a filter that does not match means "not me"
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !"footprint".contains(a.as_str()))
    {
        return;
    }
    let short = args.iter().any(|a| a == "--short");
    let secs: u64 = std::env::var("NODEWARDEN_FOOTPRINT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if short { 60 } else { 120 });
    let bin = std::env::var_os("NODEWARDEN_FOOTPRINT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nodewarden")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(run(&bin, Duration::from_secs(secs))) {
        eprintln!("footprint: FAILED: {e}");
        std::process::exit(1);
    }
}

async fn run(bin: &Path, dur: Duration) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dsock = dir.path().join("docker.sock");
    let hz = healthz_server(Mode::Ok)
        .await
        .map_err(|e| format!("healthz fake: {e}"))?;
    let _docker = docker_server(&dsock, Mode::Ok)
        .await
        .map_err(|e| format!("docker fake: {e}"))?;
    let api = FakeApi::start().await;
    api.add_node(NODE);
    let renew = || {
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    api.create(
        Kind::Lease,
        "kube-node-lease",
        json!({
            "metadata": {"name": NODE, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": renew()},
        }),
    );
    let node = dir.path().join("node");
    let kubelet_config = node_files(&node).map_err(|e| format!("node files: {e}"))?;
    let mut kubelet =
        fake_kubelet(&node, &kubelet_config).map_err(|e| format!("fake kubelet: {e}"))?;
    let rb = dir.path().join("runbook.yaml");
    std::fs::write(&rb, runbook(&hz.url(), &dsock, &node, Path::new("/proc")))
        .map_err(|e| e.to_string())?;
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;

    let size = std::fs::metadata(bin)
        .map_err(|e| format!("{}: {e}", bin.display()))?
        .len();
    println!("binary: {}", bin.display());
    println!(
        "binary size: {:.1} MB as built, {} stripped",
        size as f64 / 1e6,
        stripped_size(bin, dir.path())
            .map(|s| format!("{:.1} MB", s as f64 / 1e6))
            .unwrap_or_else(|| "n/a (no strip)".into())
    );

    let mut child = Command::new(bin)
        .args(["run", "--node-name", NODE, "--api-url", &api.url()])
        .args(["--namespace", "nodewarden", "--metrics-addr", "127.0.0.1:0"])
        .env("NODEWARDEN_RUNBOOK", &rb)
        .env("NODEWARDEN_LEDGER", dir.path().join("ledger.json"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let pid = child.id();
    let t0 = Instant::now();
    let tck = clk_tck();
    println!(
        "running `nodewarden run` (pid {pid}) for {} s, warm-up {} s ...",
        dur.as_secs(),
        WARMUP.as_secs()
    );

    let mut samples: Vec<Sample> = Vec::new();
    let mut next_renew = Duration::ZERO;
    let mut died = None;
    while t0.elapsed() < dur {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(Some(st)) = child.try_wait() {
            died = Some(st);
            break;
        }
        // the kubelet renews its Lease every 10 s (a quarter of leaseDurationSeconds 40)
        if t0.elapsed() >= next_renew {
            api.modify(Kind::Lease, "kube-node-lease", NODE, |l| {
                l["spec"]["renewTime"] = json!(renew());
            });
            next_renew += Duration::from_secs(10);
        }
        if let Some(s) = sample(pid, t0) {
            samples.push(s);
        }
    }
    let threads = thread_ticks(pid);
    let hwm = status_kb(pid).get("VmHWM").copied();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    // what each probe saw on this bench node, from one `check` round with the same runbook
    // and files (after the measurement; `check` has no API, so the API-side probes say
    // unknown there): shows that every probe had real work
    let check = Command::new(bin)
        .arg("check")
        .env("NODEWARDEN_RUNBOOK", &rb)
        .env("NODEWARDEN_LEDGER", dir.path().join("ledger.json"))
        .stdin(Stdio::null())
        .output();
    let _ = kubelet.kill();
    let _ = kubelet.wait();
    let agent_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    if let Some(st) = died {
        let tail: Vec<&str> = agent_log.lines().rev().take(20).collect();
        return Err(format!(
            "the agent exited early ({st}); last log lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }

    // ---- CPU
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Err("no /proc samples of the agent".into());
    };
    let warm = samples.iter().find(|s| s.at >= WARMUP).unwrap_or(first);
    let whole = last.at.as_secs_f64();
    let steady = (last.at - warm.at).as_secs_f64();
    let own = |s: &Sample| s.ticks[0] + s.ticks[1];
    let kids = |s: &Sample| s.ticks[2] + s.ticks[3];
    println!("\nCPU (clock tick {:.0} Hz; % of one core)", tck);
    println!(
        "  whole run  {whole:>5.0} s: agent {:>7.0} ms ({}), children {:>6.0} ms ({}), total {}",
        ms(own(last), tck),
        pct(ms(own(last), tck), whole),
        ms(kids(last), tck),
        pct(ms(kids(last), tck), whole),
        pct(ms(own(last) + kids(last), tck), whole),
    );
    if steady > 0.0 {
        let (a, c) = (own(last) - own(warm), kids(last) - kids(warm));
        println!(
            "  steady     {steady:>5.0} s: agent {:>7.0} ms ({}), children {:>6.0} ms ({}), total {}  = {:.0} ms per 120 s",
            ms(a, tck),
            pct(ms(a, tck), steady),
            ms(c, tck),
            pct(ms(c, tck), steady),
            pct(ms(a + c, tck), steady),
            ms(a + c, tck) / steady * 120.0,
        );
    }
    println!("  per live thread at the end (exited blocking-pool threads are not listed):");
    for (name, (t, n)) in &threads {
        println!("    {name:<18} x{n:<2} {:>7.0} ms", ms(*t, tck));
    }

    // ---- memory
    let peak_anon = samples.iter().map(|s| s.anon).max().unwrap_or(0);
    let peak_file = samples.iter().map(|s| s.file).max().unwrap_or(0);
    let tail: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm.at).collect();
    let avg =
        |f: fn(&Sample) -> u64| tail.iter().map(|s| f(s)).sum::<u64>() / (tail.len().max(1) as u64);
    println!("\nRSS");
    println!(
        "  peak (VmHWM) {}; sampled peaks: anonymous {}, file-backed {}",
        hwm.map(mib).unwrap_or_else(|| "n/a".into()),
        mib(peak_anon),
        mib(peak_file)
    );
    println!(
        "  steady (mean after warm-up): {} = anonymous {} + file-backed {} (+ shmem)",
        mib(avg(|s| s.rss)),
        mib(avg(|s| s.anon)),
        mib(avg(|s| s.file))
    );
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.at >= SETTLED).collect();
    if !settled.is_empty() {
        let n = settled.len() as u64;
        let mean = |f: fn(&Sample) -> u64| settled.iter().map(|s| f(s)).sum::<u64>() / n;
        println!(
            "  idle (mean after {} s, start-up memory handed back at 60 s): {} = anonymous {} + file-backed {}; max {}",
            SETTLED.as_secs(),
            mib(mean(|s| s.rss)),
            mib(mean(|s| s.anon)),
            mib(mean(|s| s.file)),
            mib(settled.iter().map(|s| s.rss).max().unwrap_or(0)),
        );
    }
    println!(
        "  at the end:                  {} = anonymous {} + file-backed {}",
        mib(last.rss),
        mib(last.anon),
        mib(last.file)
    );

    // ---- API requests
    let reqs = api.requests();
    let warm_at = reqs.first().map(|r| r.at);
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let steady_from = warm_at.and_then(|t| {
        t.checked_add(jiff::SignedDuration::try_from(warm.at).ok()?)
            .ok()
    });
    for r in &reqs {
        let what = if r.resource.is_empty() {
            r.path.clone()
        } else {
            r.resource_path()
        };
        let k = format!("{} {what}", r.verb);
        let e = by_kind.entry(k).or_default();
        e.0 += 1;
        if steady_from.is_some_and(|t| r.at >= t) {
            e.1 += 1;
        }
    }
    let steady_total: usize = by_kind.values().map(|v| v.1).sum();
    println!(
        "\nAPI requests: {} in {whole:.0} s; steady state {:.2} per minute",
        reqs.len(),
        steady_total as f64 / (steady / 60.0).max(1e-9)
    );
    println!("  {:<40} {:>6} {:>16}", "kind", "total", "steady per min");
    for (k, (n, s)) in &by_kind {
        println!(
            "  {k:<40} {n:>6} {:>16.2}",
            *s as f64 / (steady / 60.0).max(1e-9)
        );
    }
    let lines = agent_log.lines().count();
    println!(
        "\nagent log: {lines} lines ({:.1} per minute); the last ones:",
        lines as f64 / (whole / 60.0)
    );
    for l in agent_log.lines().skip(lines.saturating_sub(8)) {
        println!("  {}", l.chars().take(240).collect::<String>());
    }

    println!("\nwhat the probes saw (one `nodewarden check` round on the bench node):");
    match check {
        Ok(o) => {
            for l in String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with(' ') && !l.starts_with("runbook:"))
            {
                println!("  {}", l.chars().take(200).collect::<String>());
            }
        }
        Err(e) => println!("  `nodewarden check` did not run: {e}"),
    }

    if reqs.is_empty() {
        return Err("the agent made no API request".into());
    }
    if last.rss == 0 || samples.len() < 2 {
        return Err("no RSS figures".into());
    }
    Ok(())
}
