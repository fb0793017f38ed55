//! The harness: the real `lockfile` binary, the real component in the real
//! wasmtime, on real files and processes. Each test has its own directory.

mod bad_input;
mod cli;
mod common;
mod companion;
mod consumer;
mod embedding;
mod etcd;
mod hosts;
mod identity;
mod languages;
mod leases;
mod long_names;
mod namespaces;
mod nfs;
mod nfs_rig;
mod plugins;
mod races;
mod readme;
mod survey;
mod users;
mod wasmtime_run;
