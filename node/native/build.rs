//! napi-rs's link setup for the addon (on macOS, the undefined symbols are
//! Node's, resolved when the addon is loaded).
fn main() {
    napi_build::setup();
}
