//! The host's typed errors as one Python exception, `Failure`, whose
//! arguments the package turns into labm8's exception classes
//! (`labm8_lockfile._errors`): the classes, their docs and messages live in
//! Python, where users read them.

use lockfile_host::{Error, Owner, Refusal};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    Failure,
    PyException,
    "A lock operation failed: args are (kind, path, message, text, refusal)."
);

/// An owner as `(pid, seconds, nanoseconds, hostname, token)`.
pub type OwnerTuple = (u32, u64, u32, Option<String>, Option<u64>);

/// A refusal as `(owner, verdict, cause, reason)`.
pub type RefusalTuple = (OwnerTuple, &'static str, &'static str, String);

pub fn owner(o: &Owner) -> OwnerTuple {
    (
        o.pid,
        o.date.seconds,
        o.date.nanos,
        o.hostname.clone(),
        o.token,
    )
}

fn refusal(r: &Refusal) -> RefusalTuple {
    (
        owner(&r.owner),
        r.verdict.as_str(),
        r.cause.as_str(),
        r.reason.clone(),
    )
}

/// The `kind` the package matches on; the same words as the WIT's error cases.
fn kind(e: &Error) -> &'static str {
    match e {
        Error::UnableToAcquire(_) => "unable-to-acquire",
        Error::UnableToRelease(_) => "unable-to-release",
        Error::Malformed { .. } => "malformed",
        Error::NotAFile { .. } => "not-a-file",
        Error::Unreachable { .. } => "unreachable",
        Error::Denied { .. } => "denied",
        Error::InvalidIdentity { .. } => "invalid-identity",
        Error::Contended { .. } => "contended",
        Error::Lost { .. } => "lost",
        Error::Io { .. } => "io",
        Error::NoSuchProcess(_) => "no-such-process",
        Error::Runtime { .. } => "runtime",
        _ => "other",
    }
}

/// The path an error names, and what is wrong there without it.
fn path_and_message(e: &Error) -> (String, String) {
    match e {
        Error::UnableToAcquire(r) | Error::UnableToRelease(r) => (r.path.clone(), r.reason.clone()),
        Error::Malformed { path, message }
        | Error::NotAFile { path, message }
        | Error::Unreachable { path, message }
        | Error::Denied { path, message }
        | Error::InvalidIdentity { path, message }
        | Error::Contended { path, message }
        | Error::Lost { path, message }
        | Error::Io { path, message } => (path.display().to_string(), message.clone()),
        other => (String::new(), other.to_string()),
    }
}

/// `e` as a `Failure`.
pub fn to_py(e: &Error) -> PyErr {
    let (path, message) = path_and_message(e);
    Failure::new_err((
        kind(e),
        path,
        message,
        e.to_string(),
        e.refusal().map(refusal),
    ))
}
