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

/// The `kind` the package matches on (the WIT's words for the protocol's
/// errors), the path the error names and what is wrong there.
fn parts(e: &Error) -> (&'static str, String, String) {
    match e {
        Error::Lock(e) => (e.kind(), e.path().to_owned(), e.message().to_owned()),
        Error::NoSuchProcess(_) => ("no-such-process", String::new(), e.to_string()),
        Error::Runtime { .. } => ("runtime", String::new(), e.to_string()),
        _ => ("other", String::new(), e.to_string()),
    }
}

/// `e` as a `Failure`.
pub fn to_py(e: &Error) -> PyErr {
    let (kind, path, message) = parts(e);
    Failure::new_err((kind, path, message, e.to_string(), e.refusal().map(refusal)))
}
