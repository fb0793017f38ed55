//! The adapters between the protocol and the world it runs in: directories
//! (`std::fs` natively, WASI descriptors in a component) and `/proc`. The
//! rest of the crate is pure logic over the [`crate::protocol::Dir`] and
//! [`crate::protocol::System`] traits, and runs unchanged in the simulator.

pub mod proc_view;
pub mod procfs;
#[cfg(unix)]
pub mod std_dir;
#[cfg(target_os = "wasi")]
pub mod wasi_dir;
