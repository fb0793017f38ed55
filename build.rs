//! Link settings for the `lockfile` binary, which starts and exits for
//! every command (figures in bench/README.md).
//!
//! On Linux with glibc the binary is linked as a fixed-address executable
//! (`-no-pie`) with lazy symbol binding (`-z lazy`): a position-independent
//! one makes the dynamic loader apply some 7,700 relocations at every start,
//! dirtying the pages they land on, and immediate binding resolves every
//! imported symbol although a command calls few. The price is hardening
//! that matters little for a memory-safe program: the executable's own
//! image is not randomised (its heap, stack and libraries still are) and its
//! GOT stays writable. Only this binary (and the benchmark's floor and
//! native limit): the library and the tests keep the toolchain's defaults.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // A static build (`scripts/install`: `+crt-static` with the static
    // relocation model) is a fixed-address executable without a loader
    // already; `-no-pie` on a static position-independent one (`+crt-static`
    // alone) would give a binary that crashes at start.
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .split(',')
        .any(|f| f == "crt-static");
    if os == "linux" && env == "gnu" && !static_crt {
        println!("cargo:rustc-link-arg-bin=lockfile=-no-pie");
        println!("cargo:rustc-link-arg-bin=lockfile=-Wl,-z,lazy");
        // The benchmark's floor and native limit (examples/) are linked
        // alike, so that they measure what they claim to.
        println!("cargo:rustc-link-arg-examples=-no-pie");
        println!("cargo:rustc-link-arg-examples=-Wl,-z,lazy");
    }
    // `run`'s gate child shares lockfile's memory where its exec can be a
    // raw system call (src/gate.rs); elsewhere it is a fork.
    println!("cargo:rustc-check-cfg=cfg(shared_memory_gate)");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "linux" && matches!(arch.as_str(), "x86_64" | "aarch64") {
        println!("cargo:rustc-cfg=shared_memory_gate");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
