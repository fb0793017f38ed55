//! The precompiled component in the binary, and running its code where it
//! lies (no copy at start-up).

/// The component (the `library` world) precompiled by `build.rs` for this
/// host and engine config.
/// The host links no compiler: this is the only form it can load. Aligned
/// to a page, so that [`Runtime::for_command`] can run its code where it
/// lies in the binary (wasmtime's text section is page-aligned within it).
pub(crate) static PRECOMPILED: &PageAligned<[u8]> = &PageAligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/lockfile-runtime.cwasm"
)));

/// The `coordinated-library` component (the library and locks kept in a
/// key-value store), precompiled likewise: loaded (as a copy) only when a
/// lock in a store is first opened, so that a process that locks files
/// pays nothing for it.
pub(crate) static PRECOMPILED_COORDINATED: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lockfile-coordinated.cwasm"));

/// The largest page size of the target: 4 KiB on x86-64, up to 64 KiB on
/// other 64-bit Linux targets.
#[cfg_attr(target_arch = "x86_64", repr(C, align(4096)))]
#[cfg_attr(not(target_arch = "x86_64"), repr(C, align(65536)))]
pub(crate) struct PageAligned<T: ?Sized>(pub(crate) T);

/// Whether a runtime of this process already uses [`PRECOMPILED`] in place.
/// wasmtime registers code by its address, once: a second component at the
/// same address would collide, so later runtimes load a copy.
#[cfg(target_os = "linux")]
pub(crate) static IN_PLACE_TAKEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Makes the component's code executable where it lies in the binary's
/// read-only data, instead of in a fresh copy: no 0.5 MB allocation and copy
/// at start (see [`Runtime::for_command`]).
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct InPlaceCode;

#[cfg(target_os = "linux")]
impl wasmtime::CustomCodeMemory for InPlaceCode {
    fn required_alignment(&self) -> usize {
        rustix::param::page_size()
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        use rustix::mm::{mprotect, MprotectFlags};
        // SAFETY: wasmtime passes the page-aligned text section of a loaded
        // component (in the binary's read-only data, or in its own copy);
        // adding execute permission to those pages changes no data.
        unsafe {
            mprotect(
                ptr.cast_mut().cast(),
                len,
                MprotectFlags::READ | MprotectFlags::EXEC,
            )
        }
        .map_err(|e| {
            wasmtime::Error::msg(format!("cannot make the component's code executable: {e}"))
        })
    }

    fn unpublish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        use rustix::mm::{mprotect, MprotectFlags};
        // SAFETY: as above; wasmtime guarantees no code runs there any more.
        // Read-only is the binary's own protection for those pages, and a
        // copy is unmapped right after.
        unsafe { mprotect(ptr.cast_mut().cast(), len, MprotectFlags::READ) }.map_err(|e| {
            wasmtime::Error::msg(format!("cannot unpublish the component's code: {e}"))
        })
    }
}
