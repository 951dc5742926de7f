//! The DaemonSet's pod, for real: the image built from `packaging/Containerfile`
//! (`packaging/build-image.sh`) run with podman against the real-systemd testbed exactly
//! as `packaging/kubernetes/daemonset.yaml` says: its hostPath mounts, user,
//! capabilities, read-only root, `hostPID` and `hostNetwork`, read from the manifest
//! (so this test follows the manifest; a field it cannot map fails it).
//!
//! The node is the testbed. How each part of the pod spec maps onto it, and why that is
//! faithful:
//! - **hostPath `P`** → `P` in the testbed's root as the testbed sees it ([`NodeRoot`]):
//!   its overlay root, with its `/proc` (a procfs of the testbed's PID namespace) and the
//!   parts of its `/run` the host can reach (nspawn's `/run` is a tmpfs private to the
//!   container): `/run/dbus` is the bus's host-side listener (the same dbus-daemon, another
//!   listening socket), `/run/nodewarden-test` the fake docker's host-visible directory,
//!   and `/run/docker.sock` a link into it (the fake docker listens on both). The
//!   journal is the testbed's persistent one, on the overlay.
//! - **hostPID** → the testbed's PID namespace (`--pid ns:/proc/<leader>/ns/pid`), not the
//!   test machine's. On a node, hostPID shares the namespace whose PID 1 is the node's
//!   systemd, so the MainPID that systemd reports over D-Bus is a pid the pod's `/proc`
//!   knows. Here the node's systemd is PID 1 of the testbed's namespace; the machine's own
//!   namespace would show other pids, where `/proc/<MainPID>` is some unrelated process.
//! - **hostNetwork** → the testbed's network namespace (`--network ns:/proc/<leader>/ns/net`;
//!   boot.sh shares the machine's, so the kubelet's 127.0.0.1:10248 is the pod's).
//! - **user, capabilities, readOnlyRootFilesystem, allowPrivilegeEscalation** → podman's
//!   `--user`, `--cap-drop/--cap-add`, `--read-only` (without podman's extra tmpfs mounts,
//!   which Kubernetes does not add), `--security-opt no-new-privileges`; seccomp
//!   RuntimeDefault is podman's default profile (like containerd's, it allows chroot(2)
//!   only with CAP_SYS_CHROOT).
//! - **configMap volume** → the ConfigMap's data as files, read-only.
//! - **the API** → the fake API server (`--api-url`), in place of the in-cluster
//!   ServiceAccount: this test is about the host side.
//!
//! Shown: all five probes give the verdict the systemd unit gives on the same testbed
//! (`check` in the pod vs `check` as a unit); the daemon in the pod restarts the kubelet
//! and reboots the node over the testbed's D-Bus, its ledger lands on the hostPath (the
//! node's /var/lib/nodewarden), and the pod started again after the reboot (as the kubelet
//! would) finishes the episode from it.
//!
//! Needs root, the testbed rootfs, podman and the image (`NODEWARDEN_POD_IMAGE`, set by
//! tests/run after build-image.sh); otherwise SKIP, or a failure when
//! `NODEWARDEN_REQUIRE_POD` is set (tests/run sets it under CI as root).

#[path = "e2e/kubelet.rs"]
mod kubelet;
mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodewarden_fakeapi::{FakeApi, Kind, pod};
use nodewarden_packaging::{Object, parse_stream, repo_root};
use serde_json::Value;
use support::testbed::{Testbed, TestbedConfig, is_root};

const NODE: &str = "testbed";
const NAMESPACE: &str = "nodewarden";
const CORDON_ANNOTATION: &str = "nodewarden.io/cordoned-by";

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ------------------------------------------------------------------ the image

/// podman with the settings this machine needs (packaging/build-image.sh).
struct Podman {
    image: String,
    conf: tempfile::TempDir,
}

impl Podman {
    /// `None` (after printing SKIP) when the pod cannot run here; a panic instead when
    /// `NODEWARDEN_REQUIRE_POD` is set.
    fn find(test: &str) -> Option<Podman> {
        let required =
            std::env::var_os("NODEWARDEN_REQUIRE_POD").is_some_and(|v| !v.is_empty() && v != "0");
        let image = std::env::var("NODEWARDEN_POD_IMAGE").ok();
        let why = if !is_root() {
            Some("needs root (podman, mounts, the testbed)".to_string())
        } else if image.is_none() {
            Some("NODEWARDEN_POD_IMAGE is not set (tests/run sets it after packaging/build-image.sh)".into())
        } else if support::testbed::rootfs().is_none() {
            Some("no testbed rootfs".into())
        } else {
            None
        };
        if let Some(why) = why {
            assert!(
                !required,
                "NODEWARDEN_REQUIRE_POD is set but {test} cannot run: {why}"
            );
            let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {why}");
            return None;
        }
        let conf = tempfile::tempdir().unwrap();
        std::fs::write(
            conf.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n",
        )
        .unwrap();
        let p = Podman {
            image: image.unwrap_or_default(),
            conf,
        };
        let out = run(p.cmd().args(["image", "exists", &p.image]));
        assert!(
            out.status.success(),
            "image {} not found (packaging/build-image.sh builds it)",
            p.image
        );
        Some(p)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.conf.path().join("containers.conf"))
            .args(["--storage-driver", "vfs", "--runtime", "runc"])
            .args(["--cgroup-manager", "cgroupfs"]);
        c
    }
}

// ------------------------------------------------------------------ the manifest

/// The pod of packaging/kubernetes/daemonset.yaml, as podman options.
struct PodSpec {
    /// podman `run` options: user, capabilities, namespaces, mounts, env.
    opts: Vec<String>,
    /// The container's arguments.
    args: Vec<String>,
    /// (hostPath, volume name) of every writable hostPath mount.
    writable: Vec<(String, String)>,
}

fn manifest(file: &str) -> Vec<Object> {
    let p = repo_root().join("packaging/kubernetes").join(file);
    parse_stream(file, &std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// Fail on any key this test does not map: a manifest change must not slip past it.
fn only_keys(what: &str, v: &Value, known: &[&str]) {
    if let Some(m) = v.as_object() {
        let unknown: Vec<&String> = m.keys().filter(|k| !known.contains(&k.as_str())).collect();
        assert!(
            unknown.is_empty(),
            "{what}: the pod test does not map {unknown:?} yet (agent/tests/pod.rs)"
        );
    }
}

impl PodSpec {
    /// Map the DaemonSet's pod onto `node` (the testbed's root) and `leader` (the testbed's
    /// PID 1 as the machine sees it); ConfigMap volumes are written under `scratch`.
    fn from_manifest(node: &NodeRoot, scratch: &Path) -> PodSpec {
        let objs = manifest("daemonset.yaml");
        let ds = objs.iter().find(|o| o.kind() == "DaemonSet").unwrap();
        let spec = &ds["spec"]["template"]["spec"];
        // scheduling and API-side fields: nothing for a single node to map
        only_keys(
            "pod spec",
            spec,
            &[
                "serviceAccountName",
                "priorityClassName",
                "tolerations",
                "dnsPolicy",
                "terminationGracePeriodSeconds",
                "hostPID",
                "hostNetwork",
                "containers",
                "volumes",
            ],
        );
        let containers = spec["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "one container");
        let c = &containers[0];
        only_keys(
            "container",
            c,
            &[
                "name",
                "image",
                "imagePullPolicy",
                "args",
                "env",
                "ports",
                "resources",
                "securityContext",
                "volumeMounts",
            ],
        );
        let leader = node.leader;
        let mut opts: Vec<String> = Vec::new();
        if spec["hostPID"] == Value::Bool(true) {
            opts.push(format!("--pid=ns:/proc/{leader}/ns/pid"));
        }
        if spec["hostNetwork"] == Value::Bool(true) {
            opts.push(format!("--network=ns:/proc/{leader}/ns/net"));
        }
        let sc = &c["securityContext"];
        only_keys(
            "securityContext",
            sc,
            &[
                "runAsUser",
                "runAsGroup",
                "privileged",
                "allowPrivilegeEscalation",
                "readOnlyRootFilesystem",
                "capabilities",
                "seccompProfile",
            ],
        );
        opts.push(format!(
            "--user={}:{}",
            sc["runAsUser"].as_u64().expect("runAsUser"),
            sc["runAsGroup"].as_u64().expect("runAsGroup")
        ));
        assert_eq!(sc["privileged"], Value::Bool(false), "a privileged pod");
        if sc["allowPrivilegeEscalation"] == Value::Bool(false) {
            opts.push("--security-opt=no-new-privileges".into());
        }
        if sc["readOnlyRootFilesystem"] == Value::Bool(true) {
            opts.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
        }
        for cap in sc["capabilities"]["drop"].as_array().into_iter().flatten() {
            opts.push(format!("--cap-drop={}", str_of(cap).to_lowercase()));
        }
        for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            opts.push(format!("--cap-add={}", str_of(cap).to_lowercase()));
        }
        assert_eq!(
            sc["seccompProfile"]["type"], "RuntimeDefault",
            "podman's default profile stands for RuntimeDefault"
        );
        for e in c["env"].as_array().into_iter().flatten() {
            let name = str_of(&e["name"]);
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("spec.nodeName") => NODE.to_string(),
                Some("metadata.namespace") => NAMESPACE.to_string(),
                Some(other) => panic!("env {name}: fieldRef {other} is not mapped"),
                None => str_of(&e["value"]),
            };
            opts.push(format!("--env={name}={value}"));
        }
        let volumes: BTreeMap<String, Value> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (str_of(&v["name"]), v.clone()))
            .collect();
        let mut writable = Vec::new();
        for m in c["volumeMounts"].as_array().unwrap() {
            only_keys(
                "volumeMount",
                m,
                &["name", "mountPath", "readOnly", "mountPropagation"],
            );
            let name = str_of(&m["name"]);
            let v = &volumes[&name];
            let ro = m["readOnly"] == Value::Bool(true);
            let src = if let Some(hp) = v["hostPath"]["path"].as_str() {
                let here = node.path(hp);
                match v["hostPath"]["type"].as_str().unwrap_or("") {
                    "DirectoryOrCreate" => std::fs::create_dir_all(&here).unwrap(),
                    "Directory" => assert!(here.is_dir(), "hostPath {hp} is not a directory"),
                    "File" => assert!(here.is_file(), "hostPath {hp} is not a file"),
                    t => panic!("hostPath type {t:?} is not mapped"),
                }
                if !ro {
                    writable.push((hp.to_string(), name.clone()));
                }
                here
            } else if let Some(cm) = v["configMap"]["name"].as_str() {
                config_map(cm, &scratch.join(&name))
            } else {
                panic!("volume {name}: only hostPath and configMap are mapped: {v}");
            };
            let propagation = match m["mountPropagation"].as_str() {
                None | Some("None") => "rprivate",
                Some("HostToContainer") => "rslave",
                Some(p) => panic!("mountPropagation {p} is not mapped"),
            };
            opts.push(format!(
                "--volume={}:{}:{},{propagation}",
                src.display(),
                str_of(&m["mountPath"]),
                if ro { "ro" } else { "rw" }
            ));
        }
        let args = c["args"].as_array().unwrap().iter().map(str_of).collect();
        PodSpec {
            opts,
            args,
            writable,
        }
    }
}

/// The ConfigMap's data as files in `dir` (a configMap volume).
fn config_map(name: &str, dir: &Path) -> PathBuf {
    let cm = manifest("configmap.yaml")
        .into_iter()
        .find(|o| o.kind() == "ConfigMap" && o.name() == name)
        .unwrap_or_else(|| panic!("ConfigMap {name} not in packaging/kubernetes/configmap.yaml"));
    std::fs::create_dir_all(dir).unwrap();
    for (k, v) in cm["data"].as_object().unwrap() {
        std::fs::write(dir.join(k), str_of(v)).unwrap();
    }
    dir.to_path_buf()
}

// ------------------------------------------------------------------ the node's root

/// The testbed's `/` as the testbed's own processes see it, assembled on the machine from
/// what the machine can reach (see the module comment), at `TB_DIR/node`. Private to
/// this test (not propagated to the overlay the testbed runs on), then made shared like
/// a systemd host's `/`, so `mountPropagation: HostToContainer` is what it is on a node.
struct NodeRoot {
    dir: PathBuf,
    leader: u32,
}

fn mount(args: &[&str]) {
    run_ok(Command::new("mount").args(args));
}

impl NodeRoot {
    fn new(tb: &Testbed) -> NodeRoot {
        let dir = tb.dir().join("node");
        std::fs::create_dir_all(&dir).unwrap();
        let d = |rel: &str| dir.join(rel).display().to_string();
        let t = |rel: &str| tb.dir().join(rel).display().to_string();
        mount(&["--rbind", &tb.root().display().to_string(), &d("")]);
        mount(&["--make-rprivate", &d("")]);
        mount(&["-t", "tmpfs", "-o", "mode=0755", "noderun", &d("run")]);
        for sub in ["run/dbus", "run/nodewarden-test"] {
            std::fs::create_dir_all(d(sub)).unwrap();
        }
        mount(&["--bind", &t("bus"), &d("run/dbus")]);
        mount(&["--bind", &t("run"), &d("run/nodewarden-test")]);
        let shared = d("");
        let mut n = NodeRoot { dir, leader: 0 };
        std::os::unix::fs::symlink(
            "/run/nodewarden-test/docker.sock",
            n.dir.join("run/docker.sock"),
        )
        .unwrap();
        n.mount_proc(tb);
        mount(&["--make-rshared", &shared]);
        n
    }

    /// A procfs of the testbed's PID namespace at `proc` (again after a reboot: a new
    /// boot is a new namespace).
    fn mount_proc(&mut self, tb: &Testbed) {
        let p = self.dir.join("proc");
        let _ = run(Command::new("umount").arg("-l").arg(&p));
        self.leader = std::fs::read_to_string(tb.dir().join("state/leader.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        run_ok(
            Command::new("nsenter")
                .args(["--target", &self.leader.to_string(), "--pid", "--"])
                .args(["mount", "-t", "proc", "proc"])
                .arg(&p),
        );
    }

    /// Where the node's path `p` is on this machine.
    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }
}

impl Drop for NodeRoot {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-R").arg("-l").arg(&self.dir));
    }
}

// ------------------------------------------------------------------ the scenario

struct Node {
    // field order: the pod and the node root go before the testbed stops
    podman: Podman,
    root: NodeRoot,
    scratch: tempfile::TempDir,
    api: Arc<FakeApi>,
    _kubelet: kubelet::KubeletLink,
    _agent_dir: tempfile::TempDir,
    tb: Testbed,
    started: Instant,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = run(self
            .podman
            .cmd()
            .args(["rm", "-f", "-t", "0", "nodewarden-pod"]));
    }
}

impl Node {
    /// The pod's `podman run` for `args`, per the manifest.
    fn pod(&self, detach: bool, args: &[String]) -> Command {
        let spec = PodSpec::from_manifest(&self.root, self.scratch.path());
        let mut c = self.podman.cmd();
        c.args(["run", "--rm", "--name", "nodewarden-pod"]);
        if detach {
            c.arg("-d");
        }
        c.args(&spec.opts).arg(&self.podman.image).args(args);
        c
    }

    fn node(&self) -> Value {
        self.api.get(Kind::Node, "", NODE).expect("node")
    }

    fn pod_log(&self) -> String {
        let out = run(self
            .podman
            .cmd()
            .args(["logs", "--tail", "40", "nodewarden-pod"]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn ledger(&self) -> Value {
        std::fs::read(self.root.path("/var/lib/nodewarden/ledger.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    async fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut(&Node) -> bool) {
        let until = Instant::now() + timeout;
        while !cond(self) {
            assert!(
                Instant::now() < until,
                "timed out after {timeout:?} waiting for: {what}\n--- ledger ---\n{:#}\n--- pod log ---\n{}",
                self.ledger(),
                self.pod_log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        eprintln!("[{:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }
}

/// Problem → verdict of a `check -o json`.
fn verdicts(json: &str) -> BTreeMap<String, (String, String)> {
    let v: Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("check -o json: {e}: {json}"));
    v["observations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                str_of(&o["problem"]),
                (str_of(&o["verdict"]), str_of(&o["summary"])),
            )
        })
        .collect()
}

fn kubelet_starts(tb: &Testbed) -> usize {
    tb.journal("kubelet.service")
        .lines()
        .filter(|l| l.contains("starting (mode="))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemonset_pod_on_a_real_systemd_node() {
    let test = "pod";
    let Some(podman) = Podman::find(test) else {
        return;
    };
    let t0 = Instant::now();
    let api = Arc::new(FakeApi::start().await);
    api.set_grace_scale(0.02);
    api.add_node(NODE);
    // a second node: one NotReady node of two stays within the runbook's storm gate (50 %)
    api.add_node("worker-2");
    api.add_replicaset("default", "web-1", 2, &[("app", "web")], None);
    api.add_pod(
        pod("default", "web-1-a")
            .node(NODE)
            .replicaset("web-1")
            .label("app", "web")
            .grace(3),
    );
    // the unit's binary and the runbook the ConfigMap carries, for the comparison
    let agent_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_nodewarden"),
        agent_dir.path().join("nodewarden"),
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let runbook = config_map("nodewarden-runbook", &scratch.path().join("unit"));
    std::fs::copy(
        runbook.join("runbook.yaml"),
        agent_dir.path().join("runbook.yaml"),
    )
    .unwrap();
    let tb = Testbed::boot(
        test,
        TestbedConfig {
            agent_dir: Some(agent_dir.path().to_path_buf()),
            ..TestbedConfig::default()
        },
    );
    let root = NodeRoot::new(&tb);
    let kubelet = kubelet::KubeletLink::start(api.clone(), tb.dir().to_path_buf(), NODE);
    let mut n = Node {
        podman,
        root,
        scratch,
        api,
        _kubelet: kubelet,
        _agent_dir: agent_dir,
        tb,
        started: t0,
    };

    // 1. `check` in the pod vs `check` as a unit, on the same node, same runbook; the
    //    kubelet logs PLEG stalls, so the journal read is seen to work (Failing in both)
    n.tb.set_ctl("kubelet.pleg", "on");
    assert!(
        n.tb.wait_journal("kubelet.service", "PLEG is not healthy", s(10)),
        "the fake kubelet logs PLEG stalls"
    );
    let unit = n.tb.exec(&[
        "systemd-run",
        "--wait",
        "--pipe",
        "--collect",
        "--quiet",
        "--unit=nodewarden-check",
        "-p",
        "Environment=NODEWARDEN_RUNBOOK=/opt/agent/runbook.yaml",
        "/opt/agent/nodewarden",
        "check",
        "--output",
        "json",
    ]);
    let unit = verdicts(&String::from_utf8_lossy(&unit.stdout));
    let spec = PodSpec::from_manifest(&n.root, n.scratch.path());
    let host_root: Vec<String> = spec
        .args
        .iter()
        .filter(|a| a.starts_with("--host-root"))
        .cloned()
        .collect();
    assert_eq!(host_root.len(), 1, "the manifest runs with --host-root");
    let mut check = vec!["check".to_string(), "--output".into(), "json".into()];
    check.extend(host_root);
    let t = Instant::now();
    let out = run(&mut n.pod(false, &check));
    let took_check = t.elapsed();
    let pod = verdicts(&String::from_utf8_lossy(&out.stdout));
    eprintln!("{:<30} {:<28} POD", "PROBLEM", "UNIT");
    for (p, (v, sum)) in &unit {
        let (pv, psum) = pod.get(p).cloned().unwrap_or_default();
        eprintln!("{p:<30} {v:<8} {sum:.40}\n{:<30} {pv:<8} {psum:.40}", "");
    }
    let built = nodewarden::domain::Problem::ALL.len();
    assert_eq!(pod.len(), built, "every built probe in the pod: {pod:?}");
    for (p, (v, _)) in &unit {
        let (pv, psum) = &pod[p];
        if v != "unknown" {
            assert_ne!(
                pv, "unknown",
                "{p}: Unknown in the pod ({psum}) where the unit says {v}"
            );
        }
        assert_eq!(pv, v, "{p}: the pod says {pv} ({psum}), the unit {v}");
    }

    assert_eq!(
        pod["PLEGUnhealthy"].0, "failing",
        "the journal, read in the pod"
    );
    n.tb.set_ctl("kubelet.pleg", "off");
    n.tb.exec_ok(&["systemctl", "restart", "kubelet.service"]);

    // 2. the daemon in the pod (the manifest's args, the e2e runbook's short clocks in its
    //    ConfigMap, the fake API), then a kubelet that hangs: restart, cordon, runtime
    //    restart, drain, reboot, all over the testbed's D-Bus
    let e2e_runbook = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/runbook.yaml"),
    )
    .unwrap();
    let mut args = spec.args.clone();
    args.extend(["--api-url".into(), n.api.url()]);
    let start_pod = |n: &Node| {
        // podman's command first: it writes the ConfigMap volume, whose runbook the test
        // then replaces with the short-clock one
        let mut cmd = n.pod(true, &args);
        std::fs::write(n.scratch.path().join("runbook/runbook.yaml"), &e2e_runbook).unwrap();
        let id = run_ok(&mut cmd);
        eprintln!(
            "[{:>6.1}s] pod started ({id:.12})",
            n.started.elapsed().as_secs_f64()
        );
    };
    start_pod(&n);
    // with the API, every probe has a verdict, the clock's too: the conditions say so
    // (for every problem the e2e runbook enables: it keeps the host-reading drift probes
    // off, since the testbed shares this machine's disks and network namespace)
    let e2e = nodewarden::runbook::parse("tests/e2e/runbook.yaml", &e2e_runbook)
        .expect("the e2e runbook is valid");
    let problems: Vec<String> = unit
        .keys()
        .filter(|p| {
            p.parse::<nodewarden::domain::Problem>()
                .is_ok_and(|p| e2e.runbook.spec.probes.timing(p).enabled)
        })
        .cloned()
        .collect();
    assert!(
        problems.len() >= 5,
        "the e2e runbook enables the ladder's probes: {problems:?}"
    );
    n.wait_for(
        "the agent in the pod reports a verdict of each probe as a node condition",
        s(30),
        |n| {
            let node = n.node();
            let conds = node["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            problems.iter().all(|p| {
                conds.iter().any(|c| {
                    c["type"] == p.as_str() && (c["status"] == "False" || c["status"] == "True")
                })
            })
        },
    )
    .await;
    let boot0 = n.tb.boot_id();
    let starts0 = kubelet_starts(&n.tb);
    n.tb.set_mode("kubelet", "hang");
    n.wait_for(
        "kubelet restarted from the pod (RestartUnit over D-Bus)",
        s(40),
        |n| kubelet_starts(&n.tb) > starts0,
    )
    .await;
    n.wait_for("cordoned by nodewarden", s(40), |n| {
        n.node()["spec"]["unschedulable"] == Value::Bool(true)
            && !n.node()["metadata"]["annotations"][CORDON_ANNOTATION].is_null()
    })
    .await;
    let t_reboot = Instant::now();
    n.tb.wait_for_reboot(&boot0, s(150));
    eprintln!(
        "[{:>6.1}s] rebooted from the pod (login1 Reboot over D-Bus)",
        n.started.elapsed().as_secs_f64()
    );
    // the ledger is the node's: it records the reboot, on the hostPath, seen by the node
    for (hp, vol) in &spec.writable {
        assert_eq!(
            hp, "/var/lib/nodewarden",
            "volume {vol}: only the ledger is writable"
        );
    }
    let on_node = n.tb.exec_ok(&["cat", "/var/lib/nodewarden/ledger.json"]);
    let ledger: Value = serde_json::from_str(&on_node).unwrap();
    assert_eq!(
        ledger["reboots"].as_array().map(Vec::len),
        Some(1),
        "the node's /var/lib/nodewarden/ledger.json records the reboot: {ledger:#}"
    );
    // 3. the reboot killed the pod (its PID namespace ended); the kubelet would start it
    //    again on the new boot: same manifest, the new boot's namespaces
    n.tb.set_mode("kubelet", "ok");
    n.root.mount_proc(&n.tb);
    let _ = run(n
        .podman
        .cmd()
        .args(["rm", "-f", "-t", "0", "nodewarden-pod"]));
    start_pod(&n);
    n.wait_for(
        "after the reboot the pod finishes the episode from the ledger: uncordoned, recovered",
        s(90),
        |n| {
            n.node()["spec"]["unschedulable"] != Value::Bool(true)
                && n.ledger()["closed"]
                    .as_array()
                    .and_then(|c| c.last())
                    .is_some_and(|c| c["result"] == "recovered")
        },
    )
    .await;
    assert_eq!(n.tb.boots(), 2, "exactly one reboot");
    eprintln!(
        "REPORT pod: check in the pod {:.1}s; fault → reboot {:.1}s; whole test {:.1}s",
        took_check.as_secs_f64(),
        t_reboot.elapsed().as_secs_f64(),
        n.started.elapsed().as_secs_f64()
    );
}
