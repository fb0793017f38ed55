//! The harness: the real `lockfile` binary, the real component in the real
//! wasmtime, on real files and processes. Each test has its own directory.

mod adversarial;
mod bad_input;
mod cli;
mod common;
mod consumer;
mod embedding;
mod identity;
mod languages;
mod leases;
mod nfs;
mod nfs_rig;
mod plugins;
mod races;
mod readme;
mod survey;
mod wasmtime_run;
