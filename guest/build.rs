//! A small wasm stack: the lock code needs little, and the host resets only
//! the first few hundred KiB of a sandbox's memory between uses (see
//! host/src/engine_config.rs), so a stack of Rust's default 1 MiB would put
//! every call's stack frames in pages that fault in afresh each time.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() == Ok("wasm") {
        println!("cargo:rustc-link-arg=-zstack-size=131072");
    }
}
