//! Why a command failed, and the exit code and message that says so.

use lockfile_core::{Cause, Refusal, Verdict};

use crate::{HELD, OTHER, USAGE};

/// Another owner holds the lock: the refusal, and what was refused.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Refused while acquiring (else releasing).
    pub acquiring: bool,
    /// Who holds it, and why that counts.
    pub refusal: Refusal,
}

/// Why a command failed; decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1.
    Refused(Box<Refused>),
    /// Exit 1: a contention limit was hit (the lock changed hands too often
    /// while we looked); `--wait` retries it like a refusal.
    Busy(String),
    /// Exit 2.
    Usage(String),
    /// Exit 1: `refresh` found the lock no longer ours.
    Lost(String),
    /// Exit 3.
    Other(String),
    /// This exit code, with what went wrong already said.
    Silent(u8),
}

impl Failure {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) | Failure::Busy(_) | Failure::Lost(_) => HELD,
            Failure::Usage(_) => USAGE,
            Failure::Other(_) => OTHER,
            Failure::Silent(code) => *code,
        }
    }

    /// The message, without the `lockfile: ` prefix.
    pub fn message(&self) -> String {
        match self {
            Failure::Refused(r) => {
                let Refused {
                    acquiring,
                    refusal: ref f,
                } = **r;
                let head = format!(
                    "cannot {} `{}`: {f}",
                    if acquiring { "acquire" } else { "release" },
                    f.path,
                );
                // The plain case needs no more words than `held by pid N (alive)`.
                match (f.verdict, f.cause) {
                    (Verdict::Held, Cause::Running | Cause::RunningUnverified) => head,
                    (Verdict::Stale, _) if acquiring => {
                        format!(
                            "{head}; {} (without --no-replace-stale it is taken over)",
                            f.reason
                        )
                    }
                    (Verdict::Stale, _) => {
                        format!("{head}; {} (use --force to remove it)", f.reason)
                    }
                    _ => format!("{head}; {}", f.reason),
                }
            }
            Failure::Busy(m) | Failure::Usage(m) | Failure::Lost(m) | Failure::Other(m) => {
                m.clone()
            }
            Failure::Silent(_) => String::new(),
        }
    }
}

/// The failure a protocol error is: refusals name the owner, contention is
/// "busy", a lost lease is lost, anything else is an error.
pub fn failure(e: lockfile_core::Error) -> Failure {
    use lockfile_core::Error;
    match e {
        Error::UnableToAcquire(refusal) => Failure::Refused(Box::new(Refused {
            acquiring: true,
            refusal: *refusal,
        })),
        Error::UnableToRelease(refusal) => Failure::Refused(Box::new(Refused {
            acquiring: false,
            refusal: *refusal,
        })),
        Error::Contended { .. } => Failure::Busy(e.to_string()),
        Error::Lost { .. } => Failure::Lost(e.to_string()),
        other => Failure::Other(other.to_string()),
    }
}
