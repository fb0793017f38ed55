//! What the benchmark's floor and native limit share with the `lockfile`
//! binary's linking (src/main.rs): its allocator and, on musl, its string
//! functions, so that the comparison measures what it claims to.

#[allow(dead_code)]
#[path = "../src/alloc.rs"]
pub mod alloc;
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
#[allow(dead_code)]
#[path = "../src/memfns.rs"]
mod memfns;

#[global_allocator]
pub static ALLOC: alloc::Arena = alloc::Arena::new();
