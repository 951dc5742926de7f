//! The kubelet's certificates and this node's CertificateSigningRequests, judged against
//! the API server's time (issue 16, seed 000: a node rebooted with a wrong clock, its
//! certificate not valid yet, three `Pending` CSRs until a person approved them).
//!
//! Pure: bytes and API objects in, judgements out; no I/O and no clock (the probe in
//! `kubecert.rs` reads the files, asks the API and passes the time).
//!
//! Certificates are read with one minimal DER walk (RFC 5280 §4.1), here, shared with the
//! clock probe (`clock.rs` reads the kubelet client certificate's validity through it):
//! validity, issuer and subject are all a judgement needs, so the product carries no X.509
//! library.
//! A PKCS#10 request (RFC 2986 §4) is walked the same way for its subject's CN: a kubelet
//! that bootstraps asks as `system:bootstrap:<token-id>`, and only the request's subject
//! (`CN=system:node:<node>`) says which node it is for.
//!
//! Nothing here, or anywhere in the agent, approves a request: approving a node's own
//! certificate from the node is the privilege escalation the CSR flow exists to prevent.
//! The report names the command a person runs after checking the request.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

use super::{ApiFuture, NotConfigured};
use crate::domain::{Dur, Timestamp};

/// This node's CSRs (asked by or for `system:node:<node>`: [`CsrView::is_for_node`]),
/// from the API (`act/csr.rs`).
pub trait CsrSource: Send + Sync {
    fn this_node(&self) -> ApiFuture<'_, Vec<CsrView>>;
}

impl CsrSource for NotConfigured {
    fn this_node(&self) -> ApiFuture<'_, Vec<CsrView>> {
        let r = self.0.clone();
        Box::pin(async move { Err(r) })
    }
}

/// The kubelet's client certificates (`kube-apiserver-client-kubelet`).
pub const SIGNER_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The kubelet's serving certificates (`serverTLSBootstrap: true`); no built-in approver.
pub const SIGNER_SERVING: &str = "kubernetes.io/kubelet-serving";

/// What a judgement needs of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub validity: Validity,
    /// The subject's common name (`system:node:<node>` for a kubelet client certificate).
    pub subject_cn: Option<String>,
    /// Issuer and subject are the same name (the kubelet's own `kubelet.crt`).
    pub self_signed: bool,
}

/// The DER of the first PEM block tagged `tag` (`CERTIFICATE`, `CERTIFICATE REQUEST`).
fn pem_block(bytes: &[u8], tag: &str) -> Result<Vec<u8>, &'static str> {
    let blocks = pem::parse_many(bytes).map_err(|_| "bad PEM")?;
    blocks
        .into_iter()
        .find(|b| b.tag() == tag)
        .map(|b| b.into_contents())
        .ok_or("no such PEM block")
}

/// The first certificate of a PEM file (the kubelet's `*-current.pem` holds the
/// certificate and its key).
pub fn cert_info_pem(bytes: &[u8]) -> Result<CertInfo, &'static str> {
    let der = pem_block(bytes, "CERTIFICATE").map_err(|e| match e {
        "no such PEM block" => "no CERTIFICATE block",
        e => e,
    })?;
    cert_info_der(&der)
}

/// The validity window of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

/// What the walk takes out of a TBSCertificate: the raw issuer and subject
/// Names (their contents) and the validity window.
struct Tbs<'a> {
    issuer: &'a [u8],
    validity: Validity,
    subject: &'a [u8],
}

/// `Certificate → TBSCertificate → issuer, validity, subject`: the one DER walk
/// of a certificate (RFC 5280 §4.1).
fn tbs(der: &[u8]) -> Result<Tbs<'_>, &'static str> {
    let (tag, cert, _) = tlv(der)?;
    if tag != 0x30 {
        return Err("not a SEQUENCE");
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return Err("no TBSCertificate");
    }
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // [0] EXPLICIT version
    }
    let (tag, _, r) = tlv(rest)?;
    if tag != 0x02 {
        return Err("no serial number");
    }
    let (_, _, r) = tlv(r)?; // signature AlgorithmIdentifier
    let (tag, issuer, r) = tlv(r)?;
    if tag != 0x30 {
        return Err("no issuer");
    }
    let (tag, validity, r) = tlv(r)?;
    if tag != 0x30 {
        return Err("no validity");
    }
    let (tag, subject, _) = tlv(r)?;
    if tag != 0x30 {
        return Err("no subject");
    }
    let (t1, nb, vr) = tlv(validity)?;
    let (t2, na, _) = tlv(vr)?;
    Ok(Tbs {
        issuer,
        validity: Validity {
            not_before: asn1_time(t1, nb)?,
            not_after: asn1_time(t2, na)?,
        },
        subject,
    })
}

/// A certificate's validity window alone (the clock probe's question).
pub fn cert_validity_der(der: &[u8]) -> Result<Validity, &'static str> {
    tbs(der).map(|t| t.validity)
}

/// A certificate's validity, subject CN and whether it signed itself.
pub fn cert_info_der(der: &[u8]) -> Result<CertInfo, &'static str> {
    let t = tbs(der)?;
    Ok(CertInfo {
        validity: t.validity,
        subject_cn: name_cn(t.subject)?,
        self_signed: t.issuer == t.subject,
    })
}

/// The subject CN of a PKCS#10 request, PEM (`CERTIFICATE REQUEST`, what
/// `spec.request` holds) or DER.
pub fn csr_subject_cn(request: &[u8]) -> Result<Option<String>, &'static str> {
    let der = match pem_block(request, "CERTIFICATE REQUEST") {
        Ok(d) => d,
        Err(_) => request.to_vec(),
    };
    let (tag, req, _) = tlv(&der)?;
    if tag != 0x30 {
        return Err("not a SEQUENCE");
    }
    let (tag, info, _) = tlv(req)?;
    if tag != 0x30 {
        return Err("no CertificationRequestInfo");
    }
    let (tag, _, r) = tlv(info)?;
    if tag != 0x02 {
        return Err("no version");
    }
    let (tag, subject, _) = tlv(r)?;
    if tag != 0x30 {
        return Err("no subject");
    }
    name_cn(subject)
}

/// The last `commonName` (2.5.4.3) of an RDNSequence's contents.
fn name_cn(mut rdns: &[u8]) -> Result<Option<String>, &'static str> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut cn = None;
    while !rdns.is_empty() {
        let (tag, set, r) = tlv(rdns)?;
        rdns = r;
        if tag != 0x31 {
            return Err("bad name");
        }
        let mut atvs = set;
        while !atvs.is_empty() {
            let (tag, atv, r) = tlv(atvs)?;
            atvs = r;
            if tag != 0x30 {
                return Err("bad name");
            }
            let (tag, oid, r) = tlv(atv)?;
            if tag != 0x06 {
                return Err("bad name");
            }
            if oid == CN {
                let (_, v, _) = tlv(r)?;
                cn = Some(String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    Ok(cn)
}

/// One DER TLV: (tag, contents, rest).
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    let (&tag, b) = b.split_first().ok_or("truncated")?;
    let (&l0, b) = b.split_first().ok_or("truncated")?;
    let (len, b) = if l0 < 0x80 {
        (l0 as usize, b)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return Err("bad length");
        }
        let len = b[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, &b[n..])
    };
    if b.len() < len {
        return Err("truncated");
    }
    Ok((tag, &b[..len], &b[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn asn1_time(tag: u8, v: &[u8]) -> Result<Timestamp, &'static str> {
    let s = std::str::from_utf8(v).map_err(|_| "bad time")?;
    let s = s.strip_suffix('Z').ok_or("time not in UTC")?;
    let full = match tag {
        0x17 if s.len() == 12 => {
            let yy: u32 = s[..2].parse().map_err(|_| "bad time")?;
            format!("{}{s}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 if s.len() >= 14 => s[..14].to_string(),
        _ => return Err("bad time"),
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad time");
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    );
    rfc.parse().map_err(|_| "bad time")
}

/// Which of the kubelet's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The kubelet's identity towards the API server (`kubelet-client-current.pem`).
    Client,
    /// What the kubelet serves its API with (`kubelet-server-current.pem` or `kubelet.crt`).
    Serving,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Serving => "serving",
        }
    }
}

/// Thresholds (the runbook's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Expiring within this: a warning (healthy, said in `check`).
    pub warn_before: Dur,
    /// Expiring within this: failing.
    pub fail_before: Dur,
    /// This node's CSR `Pending` longer than this: failing.
    pub csr_pending_after: Dur,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            warn_before: Dur::from_secs(30 * 86_400),
            fail_before: Dur::from_secs(7 * 86_400),
            csr_pending_after: Dur::from_secs(3600),
        }
    }
}

/// The time certificates are judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRef {
    /// The API server's (its `Date`): what decides whether TLS to it works.
    Server(Timestamp),
    /// The local clock, when the server's is unknown (said in the evidence).
    Local(Timestamp),
}

impl TimeRef {
    pub fn at(self) -> Timestamp {
        match self {
            TimeRef::Server(t) | TimeRef::Local(t) => t,
        }
    }
    fn label(self) -> &'static str {
        match self {
            TimeRef::Server(_) => "API server time",
            TimeRef::Local(_) => "local time (the API server's is unknown)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One certificate judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertJudgement {
    pub level: Level,
    /// e.g. `client cert /var/lib/kubelet/pki/kubelet-client-current.pem valid
    /// 2026-01-02..2027-01-02, API server time 2025-12-30 (before notBefore)`.
    pub evidence: String,
    /// What is wrong, for the summary (`None` when Ok).
    pub problem: Option<String>,
}

/// A day when the time is midnight UTC, else the full instant: a certificate minted at
/// 10:23:07 that is 2 minutes from valid must not read as "valid today".
fn day_or_instant(t: Timestamp) -> String {
    let s = t.to_string();
    match s.strip_suffix("T00:00:00Z") {
        Some(day) => day.to_string(),
        None => s,
    }
}

/// Seconds as days (≥ 2 d), hours (≥ 2 h), minutes or seconds.
pub fn fmt_span(secs: i64) -> String {
    let a = secs.unsigned_abs();
    if a >= 2 * 86_400 {
        format!("{}d", a / 86_400)
    } else if a >= 2 * 3600 {
        format!("{}h", a / 3600)
    } else if a >= 120 {
        format!("{}m", a / 60)
    } else {
        format!("{a}s")
    }
}

/// `info` (read from `path`) against `now` and `policy`.
pub fn judge_cert(
    role: Role,
    path: &str,
    info: &CertInfo,
    now: TimeRef,
    policy: &Policy,
) -> CertJudgement {
    let v = info.validity;
    let t = now.at();
    let left = v.not_after.as_second() - t.as_second();
    let (level, note, problem) = if t < v.not_before {
        let early = v.not_before.as_second() - t.as_second();
        (
            Level::Fail,
            "before notBefore".to_string(),
            Some(format!(
                "the kubelet {} certificate is not valid for another {} ({} {}, notBefore {}): the clock that minted it was ahead, or this time is behind",
                role.as_str(),
                fmt_span(early),
                now.label(),
                day_or_instant(t),
                day_or_instant(v.not_before)
            )),
        )
    } else if left <= 0 {
        (
            Level::Fail,
            format!("expired {} ago", fmt_span(left)),
            Some(format!(
                "the kubelet {} certificate expired {} ago ({})",
                role.as_str(),
                fmt_span(left),
                day_or_instant(v.not_after)
            )),
        )
    } else if left < policy.fail_before.as_secs_f64() as i64 {
        (
            Level::Fail,
            format!("expires in {}", fmt_span(left)),
            Some(format!(
                "the kubelet {} certificate expires in {} ({}), within {}",
                role.as_str(),
                fmt_span(left),
                day_or_instant(v.not_after),
                policy.fail_before
            )),
        )
    } else if left < policy.warn_before.as_secs_f64() as i64 {
        (
            Level::Warn,
            format!(
                "expires in {}, warning within {}",
                fmt_span(left),
                policy.warn_before
            ),
            Some(format!(
                "the kubelet {} certificate expires in {} ({}); the kubelet renews it itself long before: look for a Pending CSR",
                role.as_str(),
                fmt_span(left),
                day_or_instant(v.not_after)
            )),
        )
    } else {
        (Level::Ok, format!("expires in {}", fmt_span(left)), None)
    };
    let self_signed = if info.self_signed {
        ", self-signed"
    } else {
        ""
    };
    CertJudgement {
        level,
        evidence: format!(
            "{} cert {path} valid {}..{}{self_signed}, {} {} ({note})",
            role.as_str(),
            day_or_instant(v.not_before),
            day_or_instant(v.not_after),
            now.label(),
            day_or_instant(t),
        ),
        problem,
    }
}

/// Where a CSR stands (`status.conditions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrState {
    Pending,
    Approved,
    Denied,
    Failed,
}

/// What the judgement needs of a CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrView {
    pub name: String,
    pub signer: String,
    /// Who asked (`spec.username`, set by the API server).
    pub requester: String,
    /// The request's subject CN, when the request could be read.
    pub subject_cn: Option<String>,
    pub created: Option<Timestamp>,
    pub state: CsrState,
}

impl CsrView {
    pub fn of(csr: &CertificateSigningRequest) -> CsrView {
        let conds = csr
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let has = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
        let state = if has("Denied") {
            CsrState::Denied
        } else if has("Failed") {
            CsrState::Failed
        } else if has("Approved") {
            CsrState::Approved
        } else {
            CsrState::Pending
        };
        CsrView {
            name: csr.metadata.name.clone().unwrap_or_default(),
            signer: csr.spec.signer_name.clone(),
            requester: csr.spec.username.clone().unwrap_or_default(),
            subject_cn: csr_subject_cn(&csr.spec.request.0).ok().flatten(),
            created: csr.metadata.creation_timestamp.as_ref().map(|t| t.0),
            state,
        }
    }

    /// Asked by this node's kubelet (renewal, serving certificates) or for it (a
    /// bootstrap request whose subject is `system:node:<node>`).
    pub fn is_for_node(&self, node: &str) -> bool {
        let me = format!("system:node:{node}");
        self.requester == me || self.subject_cn.as_deref() == Some(me.as_str())
    }
}

/// A CSR of this node left `Pending` too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCsr {
    pub name: String,
    pub signer: String,
    pub requester: String,
    /// Seconds since it was created (API server time).
    pub age_secs: i64,
}

/// Of `csrs` (this node's: [`CsrView::is_for_node`]), those of the kubelet's signers
/// `Pending` for at least `after`, oldest first.
pub fn pending(csrs: &[CsrView], now: Timestamp, after: Dur) -> Vec<PendingCsr> {
    let mut out: Vec<PendingCsr> = csrs
        .iter()
        .filter(|c| c.state == CsrState::Pending)
        .filter(|c| c.signer == SIGNER_CLIENT || c.signer == SIGNER_SERVING)
        .filter_map(|c| {
            let age = now.as_second() - c.created?.as_second();
            (age >= after.as_secs_f64() as i64).then(|| PendingCsr {
                name: c.name.clone(),
                signer: c.signer.clone(),
                requester: c.requester.clone(),
                age_secs: age,
            })
        })
        .collect();
    out.sort_by(|a, b| b.age_secs.cmp(&a.age_secs).then(a.name.cmp(&b.name)));
    out
}

/// The command a person runs, after checking that each request is this node's
/// (`kubectl get csr NAME -o yaml`). A name that is not a plain DNS subdomain (the API
/// server accepts only those) is single-quoted anyway: the line is meant to be pasted.
pub fn approve_command<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut cmd = String::from("kubectl certificate approve");
    for n in names {
        cmd.push(' ');
        if !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            cmd.push_str(n);
        } else {
            cmd.push('\'');
            cmd.push_str(&n.replace('\'', r"'\''"));
            cmd.push('\'');
        }
    }
    cmd
}

#[cfg(test)]
mod tests;
