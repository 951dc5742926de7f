//! CertificateSigningRequests (`certificates.k8s.io/v1`), as the real kube-apiserver
//! creates them. Checked against kube-apiserver v1.28 (the real-apiserver tier,
//! agent/tests/realk8s.rs) by the suite scenario `kubelet_csrs_listed_never_approved`,
//! which runs on both servers, and in the upstream source and API reference:
//!
//! - `spec.username`, `spec.groups`, `spec.uid`, `spec.extra` are set from the
//!   requesting user, whatever the body says ("Only the request, signerName,
//!   expirationSeconds, and usages fields can be set on creation. Other fields are
//!   derived by Kubernetes"; `strategy.go` PrepareForCreate). The fake has no
//!   authentication: the user is the `Impersonate-User` / `Impersonate-Group` of the
//!   request (how the tests act as a node on the real server too), else [`ANONYMOUS_ADMIN`].
//! - `status` is cleared on create (the store does this for every kind with a status).
//! - Validation (`pkg/apis/certificates/validation`): `spec.request` must be a PEM
//!   `CERTIFICATE REQUEST`, `spec.signerName` and `spec.usages` are required (422
//!   Invalid). The real server also checks the request's signature; the fake does not.
//! - Field selectors: `metadata.name` and `spec.signerName` only (`select.rs`).
//! - Not served: the `approval` subresource (404 here; the real server has it, guarded
//!   by RBAC `update` on `certificatesigningrequests/approval` and `approve` on the
//!   signer, which the agent is never granted); spec immutability on update.

use http::HeaderMap;
use serde_json::{Value, json};

use crate::util::ApiError;

/// Who a request without impersonation headers is, on the fake.
pub const ANONYMOUS_ADMIN: &str = "fake-admin";

fn invalid(name: &str, field: &str, why: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!(
            "CertificateSigningRequest.certificates.k8s.io \"{name}\" is invalid: {field}: {why}"
        ),
    )
}

/// Standard base64 (what a `[]byte` field is in JSON), `None` when malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    let mut pad = 0;
    for &b in s.as_bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (pad <= 2).then_some(out)
}

/// Prepares a CSR body for the store as the real create does (see the module doc).
pub(crate) fn prepare_create(body: &mut Value, headers: &HeaderMap) -> Result<(), ApiError> {
    let name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !body.get("spec").is_some_and(Value::is_object) {
        return Err(invalid(&name, "spec.request", "Required value"));
    }
    let request = body["spec"]["request"].as_str().unwrap_or_default();
    let pem = base64_decode(request).unwrap_or_default();
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err(invalid(
            &name,
            "spec.request",
            "Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST",
        ));
    }
    if body["spec"]["signerName"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(invalid(&name, "spec.signerName", "Required value"));
    }
    if body["spec"]["usages"]
        .as_array()
        .is_none_or(|u| u.is_empty())
    {
        return Err(invalid(&name, "spec.usages", "Required value"));
    }
    let user = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(ANONYMOUS_ADMIN)
        .to_string();
    let mut groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    if headers.get("impersonate-user").is_none() {
        groups.push("system:masters".into());
    }
    groups.push("system:authenticated".into());
    let spec = &mut body["spec"];
    spec["username"] = json!(user);
    spec["groups"] = json!(groups);
    if let Some(m) = spec.as_object_mut() {
        m.remove("uid");
        m.remove("extra");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn the_requester_comes_from_the_request_not_the_body() {
        let req = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"; // the PEM header line
        let mut body = json!({"metadata": {"name": "c"}, "spec": {
            "request": req, "signerName": "kubernetes.io/kubelet-serving",
            "usages": ["server auth"], "username": "system:node:someone-else", "uid": "x"}});
        let mut h = HeaderMap::new();
        h.insert("impersonate-user", "system:node:n1".parse().unwrap());
        h.append("impersonate-group", "system:nodes".parse().unwrap());
        prepare_create(&mut body, &h).unwrap();
        assert_eq!(body["spec"]["username"], "system:node:n1");
        assert_eq!(
            body["spec"]["groups"],
            json!(["system:nodes", "system:authenticated"])
        );
        assert!(body["spec"].get("uid").is_none());
        let mut bad = json!({"metadata": {"name": "c"}, "spec": {"request": "aGk=",
            "signerName": "x/y", "usages": ["client auth"]}});
        assert_eq!(prepare_create(&mut bad, &h).unwrap_err().code, 422);
    }
}
