//! Errors as the package's JavaScript reads them: an `Error` whose message
//! is `labm8-lockfile:` and JSON (`kind`, `path`, `message`, `text`,
//! `refusal`), which `node/src/index.cjs` turns into labm8's classes.

use lockfile_host::{Error, Owner};

/// What starts the message of every error this addon throws.
const ERROR_MARK: &str = "labm8-lockfile:";

/// A failure as the JSON the package's JavaScript reads.
pub(crate) fn fail(e: &Error) -> napi::Error {
    let (kind, path, message) = match e {
        Error::Lock(l) => (l.kind(), l.path().to_owned(), l.message().to_owned()),
        Error::NoSuchProcess(_) => ("no-such-process", String::new(), e.to_string()),
        _ => ("runtime", String::new(), e.to_string()),
    };
    let refusal = e.refusal().map(|r| {
        serde_json::json!({
            "owner": owner_json(&r.owner),
            "verdict": r.verdict.as_str(),
            "cause": r.cause.as_str(),
            "reason": r.reason,
        })
    });
    let payload = serde_json::json!({
        "kind": kind,
        "path": path,
        "message": message,
        "text": e.to_string(),
        "refusal": refusal,
    });
    napi::Error::from_reason(format!("{ERROR_MARK}{payload}"))
}

/// An error of this addon's own, with the same JSON shape.
fn own_error(kind: &str, path: &str, message: String) -> napi::Error {
    let payload = serde_json::json!({
        "kind": kind,
        "path": path,
        "message": message,
        "text": format!("{path}: {message}"),
        "refusal": null,
    });
    napi::Error::from_reason(format!("{ERROR_MARK}{payload}"))
}

/// A usage error (a bad option).
pub(crate) fn invalid(message: String) -> napi::Error {
    own_error("invalid-argument", "", message)
}

/// Tokens go to JavaScript as decimal strings inside JSON: a `number`
/// loses precision past 2^53, and two tokens must never compare equal.
fn owner_json(o: &Owner) -> serde_json::Value {
    serde_json::json!({
        "pid": o.pid,
        "seconds": o.date.seconds,
        "nanos": o.date.nanos,
        "hostname": o.hostname,
        "token": o.token.map(|t| t.to_string()),
        "leaseMs": o.lease_ms,
    })
}

/// A failure of a call on a closed handle (including one that was waiting
/// for the handle when it was closed).
pub(crate) enum Failure {
    Lock(Error),
    Closed,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Lock(e)
    }
}

pub(crate) fn fail_on(path: &std::path::Path, f: Failure) -> napi::Error {
    match f {
        Failure::Lock(e) => fail(&e),
        Failure::Closed => own_error(
            "closed",
            &path.display().to_string(),
            "this LockFile was closed".into(),
        ),
    }
}
