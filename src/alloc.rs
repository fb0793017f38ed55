//! The `lockfile` process's memory allocator: size classes carved from one
//! static arena, in front of the system allocator.
//!
//! A `lockfile` process lives for one command, and most of its allocations
//! are wasmtime decoding the component's metadata and building the sandbox:
//! a few thousand small blocks in the first millisecond. The system
//! allocators spend a tenth of that start-up on them (glibc's heap grows by
//! `brk`; musl's mallocng is slower still); here an allocation is a pop from
//! a free list or a bump of an offset, under an uncontended lock, and the
//! memory the process will need first is faulted in by one system call
//! ([`Arena::prefault`]) instead of a page fault per page (bench/README.md).
//!
//! Blocks of at most 256 bytes come in 16-byte classes, larger ones in
//! four classes a doubling up to [`LARGEST_CLASS`]; a freed block goes to
//! its class's free list (or, if it is the last carved, back to the arena).
//! Blocks aligned beyond 16 bytes (up to a page) are carved at their size
//! and go back to the arena only if freed last. Larger blocks, larger
//! alignments, and everything once the arena is used up come from the
//! system allocator (a block growing past the classes moves there). Free
//! blocks are not merged, and a block shrunk in place keeps its size: a
//! process that runs for days (`run` renewing a lease) reuses the blocks it
//! frees, but what it wastes stays wasted, up to the arena's
//! [`ARENA_SIZE`], beyond which the system allocator serves it.
//!
//! The arena is zero-initialised static memory (`.bss`): the pages the
//! process never touches cost nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The arena's size: over twenty times what a `lockfile run` uses.
pub const ARENA_SIZE: usize = 8 << 20;
/// What a `lockfile` process faults in at its start ([`Arena::prefault`]):
/// about what `lockfile status` carves (287 KiB; `run` 354 KiB), so that no
/// page is cleared in vain.
pub const PREFAULT: usize = 288 << 10;
/// The largest block served from a size class.
pub const LARGEST_CLASS: usize = 1 << 20;
/// The alignment of every block carved for a size class.
const GRAIN: usize = 16;
/// Classes of 16, 32, … 256 bytes, then four a doubling (320, 384, 448,
/// 512, 640, …) up to [`LARGEST_CLASS`]: a block is at most a quarter
/// larger than asked.
const SMALL_CLASSES: usize = 256 / GRAIN;
const CLASSES: usize = SMALL_CLASSES + 4 * (LARGEST_CLASS.trailing_zeros() as usize - 8);

/// The class of a block of `size` bytes: its index and the size carved for
/// it; `None` for blocks above [`LARGEST_CLASS`].
fn class_of(size: usize) -> Option<(usize, usize)> {
    let size = size.max(1);
    if size <= SMALL_CLASSES * GRAIN {
        let index = size.div_ceil(GRAIN) - 1;
        Some((index, (index + 1) * GRAIN))
    } else if size <= LARGEST_CLASS {
        // 2^(bits - 1) < size <= 2^bits, in steps of a quarter of the lower.
        let bits = (usize::BITS - (size - 1).leading_zeros()) as usize;
        let step = 1 << (bits - 3);
        let block = size.div_ceil(step) * step;
        Some((SMALL_CLASSES + 4 * (bits - 9) + block / step - 5, block))
    } else {
        None
    }
}

/// The arena's alignment, and so the largest alignment it serves.
const PAGE: usize = 4096;

#[repr(C, align(4096))]
struct Space(UnsafeCell<[u8; ARENA_SIZE]>);

/// What the lock guards: offsets into the arena, and each class's free list
/// (the address of its first block, 0 for none; a free block's first word
/// holds the address of the next).
struct State {
    /// Where the next block is carved.
    next: usize,
    /// The highest `next` has been: the arena beyond it is still zero.
    high: usize,
    free: [usize; CLASSES],
}

/// The allocator; `#[global_allocator]` in `main.rs`.
pub struct Arena {
    space: Space,
    locked: AtomicBool,
    state: UnsafeCell<State>,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena").finish_non_exhaustive()
    }
}

// SAFETY: `state` is touched only with `locked` held, and the arena's bytes
// only through blocks, each handed to one owner at a time.
unsafe impl Sync for Arena {}

/// The state while the lock is held; releases it when dropped.
struct Held<'a>(&'a Arena);

impl std::ops::Deref for Held<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        // SAFETY: the lock is held, so no other reference to the state lives.
        unsafe { &*self.0.state.get() }
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut State {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.0.state.get() }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

impl Arena {
    /// An empty arena.
    pub const fn new() -> Self {
        Arena {
            space: Space(UnsafeCell::new([0; ARENA_SIZE])),
            locked: AtomicBool::new(false),
            state: UnsafeCell::new(State {
                next: 0,
                high: 0,
                free: [0; CLASSES],
            }),
        }
    }

    fn base(&self) -> usize {
        self.space.0.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        (ptr as usize).wrapping_sub(self.base()) < ARENA_SIZE
    }

    /// The state, locked. A spin lock: held for a few instructions, and a
    /// `lockfile` process has one busy thread; never taken in a signal
    /// handler (none of ours allocates).
    fn lock(&self) -> Held<'_> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
        Held(self)
    }

    /// Carves `size` bytes aligned to `align` from the arena: their offset,
    /// or `None` if the arena is used up.
    fn carve(state: &mut State, size: usize, align: usize) -> Option<usize> {
        let start = state.next.checked_next_multiple_of(align)?;
        let end = start.checked_add(size)?;
        if end > ARENA_SIZE {
            return None;
        }
        state.next = end;
        state.high = state.high.max(end);
        Some(start)
    }

    /// A block for `layout`, and whether its bytes are known to be zero;
    /// `None` if the system allocator must serve it.
    fn take(&self, layout: Layout) -> Option<(*mut u8, bool)> {
        // Offsets are aligned, not addresses: only alignments up to the
        // arena's own hold for both.
        if layout.align() > PAGE {
            return None;
        }
        let mut state = self.lock();
        let (size, align) = if layout.align() > GRAIN {
            (layout.size(), layout.align())
        } else {
            let (class, block) = class_of(layout.size())?;
            let head = state.free[class];
            if head != 0 {
                // SAFETY: a free block of this class, at least a word long
                // and 16-byte aligned, whose first word `give` wrote.
                state.free[class] = unsafe { (head as *const usize).read() };
                return Some((head as *mut u8, false));
            }
            (block, GRAIN)
        };
        let high = state.high;
        let start = Self::carve(&mut state, size, align)?;
        Some(((self.base() + start) as *mut u8, start >= high))
    }

    /// Takes back a block of ours.
    fn give(&self, ptr: *mut u8, layout: Layout) {
        let start = ptr as usize - self.base();
        let mut state = self.lock();
        let (class, size) = if layout.align() > GRAIN {
            (None, layout.size())
        } else {
            match class_of(layout.size()) {
                Some((class, block)) => (Some(class), block),
                // Unreachable: a block aligned to 16 or less and past the
                // classes is never carved (`take`) nor grown into
                // (`realloc`).
                None => return,
            }
        };
        if start + size == state.next {
            state.next = start;
        } else if let Some(class) = class {
            // SAFETY: the block is ours, no longer in use, at least a word
            // long and 16-byte aligned.
            unsafe { (ptr as *mut usize).write(state.free[class]) };
            state.free[class] = ptr as usize;
        }
        // A block aligned beyond 16 bytes and not freed last stays carved:
        // such blocks are rare (none in a `lockfile` process) and not worth
        // classes of their own.
    }

    /// Faults in the first `bytes` of the arena in one system call (Linux
    /// 5.14 and later; elsewhere nothing happens): each page the process
    /// touches first would otherwise cost it a page fault.
    pub fn prefault(&self, bytes: usize) {
        #[cfg(target_os = "linux")]
        // SAFETY: advice on our own static memory, which stays valid; the
        // pages read as zero either way. A refusal (an older kernel) only
        // leaves the faults to happen one by one.
        unsafe {
            libc::madvise(
                self.base() as *mut libc::c_void,
                bytes.min(ARENA_SIZE),
                libc::MADV_POPULATE_WRITE,
            );
        }
        #[cfg(not(target_os = "linux"))]
        let _ = bytes;
    }

    /// How far into the arena blocks have been carved.
    #[cfg(test)]
    fn high_water(&self) -> usize {
        self.lock().high
    }
}

// SAFETY: every block handed out is either carved from the arena (each byte
// to one block at a time: carved once, then reused only after `give`) or
// comes from `System`, and `dealloc`/`realloc` tell the two apart by address;
// blocks are at least as large and as aligned as their layout asks.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.take(layout) {
            Some((ptr, _)) => ptr,
            // SAFETY: as our caller guarantees for `layout`.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.take(layout) {
            Some((ptr, zero)) => {
                if !zero {
                    // SAFETY: the block is ours and at least this long.
                    unsafe { ptr.write_bytes(0, layout.size()) };
                }
                ptr
            }
            // SAFETY: as our caller guarantees for `layout`.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            self.give(ptr, layout);
        } else {
            // SAFETY: not ours, so `System` allocated it with `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: not ours, so `System` allocated it with `layout`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if layout.align() <= GRAIN {
            if let (Some((_, old)), Some((_, new))) = (class_of(layout.size()), class_of(new_size))
            {
                // The block already holds `new_size` bytes: a shrink, or
                // growth within the class. Freed later with the new size,
                // it goes to a class no larger than the block.
                if new <= old {
                    return ptr;
                }
                // The last block carved grows in place.
                let start = ptr as usize - self.base();
                let mut state = self.lock();
                if start + old == state.next && start + new <= ARENA_SIZE {
                    state.next = start + new;
                    state.high = state.high.max(state.next);
                    return ptr;
                }
            }
        }
        // SAFETY: `GlobalAlloc::realloc`'s contract makes this layout valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size, as `realloc`'s contract requires.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: two distinct live blocks, each at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` is ours, allocated with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test has an arena of its own: the global one serves the test
    /// harness itself.
    macro_rules! arena {
        () => {{
            static ARENA: Arena = Arena::new();
            &ARENA
        }};
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("a valid layout")
    }

    #[test]
    fn classes_cover_every_size_with_at_most_a_quarter_to_spare() {
        let mut last = (0, 0);
        for size in 1..=LARGEST_CLASS {
            let (index, block) = class_of(size).expect("a class up to the largest");
            assert!(
                block >= size && block % GRAIN == 0,
                "size {size}: block {block}"
            );
            assert!(
                size <= 256 || block - size < size / 4 + 1,
                "size {size}: block {block}"
            );
            assert!(index < CLASSES);
            // Indices grow with the block size, one class per block size.
            assert!(
                index == last.0 && block == last.1
                    || index == last.0 + 1 && block > last.1
                    || size == 1
            );
            last = (index, block);
        }
        assert_eq!(last, (CLASSES - 1, LARGEST_CLASS));
        assert_eq!(class_of(LARGEST_CLASS + 1), None);
        assert_eq!(class_of(0), Some((0, 16)));
    }

    #[test]
    fn a_freed_block_is_reused_by_the_next_of_its_class() {
        let a = arena!();
        // SAFETY (whole test): layouts of non-zero size; each block freed
        // once, with the layout it was allocated with.
        unsafe {
            let first = a.alloc(layout(100, 8));
            let second = a.alloc(layout(100, 8));
            a.dealloc(first, layout(100, 8));
            // Same class (97..=112 bytes), so the freed block comes back.
            assert_eq!(a.alloc(layout(110, 4)), first);
            // The last block carved goes back to the arena itself.
            let high = a.high_water();
            a.dealloc(second, layout(100, 8));
            assert_eq!(a.alloc(layout(1000, 8)), second);
            assert_eq!(a.high_water(), high - 112 + 1024);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_reused() {
        let a = arena!();
        // SAFETY (whole test): as above; blocks written within their size.
        unsafe {
            let dirty = a.alloc(layout(64, 16));
            dirty.write_bytes(0xAB, 64);
            let keep = a.alloc(layout(8, 8));
            a.dealloc(dirty, layout(64, 16));
            let again = a.alloc_zeroed(layout(60, 4));
            assert_eq!(again, dirty);
            assert!(std::slice::from_raw_parts(again, 60)
                .iter()
                .all(|&b| b == 0));
            // Rolled back, then carved again: dirty too.
            let last = a.alloc(layout(32, 8));
            last.write_bytes(0xCD, 32);
            a.dealloc(last, layout(32, 8));
            let fresh = a.alloc_zeroed(layout(32, 8));
            assert_eq!(fresh, last);
            assert!(std::slice::from_raw_parts(fresh, 32)
                .iter()
                .all(|&b| b == 0));
            a.dealloc(keep, layout(8, 8));
        }
    }

    #[test]
    fn blocks_honour_large_alignments() {
        let a = arena!();
        // SAFETY (whole test): as above.
        unsafe {
            let _odd = a.alloc(layout(24, 8));
            for align in [32, 64, 4096, 8192, 1 << 16, 1 << 20] {
                let p = a.alloc(layout(100, align));
                // The arena itself is page-aligned: beyond that, the
                // system's.
                assert_eq!(a.owns(p), align <= PAGE, "align {align}");
                assert_eq!(p as usize % align, 0, "align {align}");
                a.dealloc(p, layout(100, align));
            }
        }
    }

    #[test]
    fn realloc_keeps_the_contents_in_place_or_moved() {
        let a = arena!();
        // SAFETY (whole test): as above; reads within what was written.
        unsafe {
            let mut p = a.alloc(layout(10, 1));
            let mut size = 10;
            for i in 0..size {
                *p.add(i) = i as u8;
            }
            let block = a.alloc(layout(16, 8));
            // Growth within the class (10 -> 16 bytes): in place.
            p = a.realloc(p, layout(size, 1), 16);
            size = 16;
            for i in 10..size {
                *p.add(i) = i as u8;
            }
            // Beyond it, and not last: moved, contents kept.
            let moved = a.realloc(p, layout(size, 1), 5000);
            assert_ne!(moved, p);
            for i in 0..size {
                assert_eq!(*moved.add(i), i as u8);
            }
            // Last carved: grows in place.
            let grown = a.realloc(moved, layout(5000, 1), 9000);
            assert_eq!(grown, moved);
            // Shrunk in place, then freed with the smaller size: its class
            // gets a block at least as large as the class needs.
            let shrunk = a.realloc(grown, layout(9000, 1), 40);
            assert_eq!(shrunk, grown);
            for i in 0..size {
                assert_eq!(*shrunk.add(i), i as u8);
            }
            a.dealloc(shrunk, layout(40, 1));
            a.dealloc(block, layout(16, 8));
            // Past the largest class: the system's, contents kept.
            let big = a.alloc(layout(300, 8));
            big.write_bytes(7, 300);
            let system = a.realloc(big, layout(300, 8), LARGEST_CLASS + 1);
            assert!(!a.owns(system));
            assert!(std::slice::from_raw_parts(system, 300)
                .iter()
                .all(|&b| b == 7));
            a.dealloc(system, layout(LARGEST_CLASS + 1, 8));
        }
    }

    #[test]
    fn a_used_up_arena_hands_over_to_the_system_allocator() {
        let a = arena!();
        // SAFETY (whole test): as above.
        unsafe {
            let mut ours = Vec::new();
            loop {
                let p = a.alloc(layout(LARGEST_CLASS, 16));
                assert!(!p.is_null());
                if !a.owns(p) {
                    p.write_bytes(1, LARGEST_CLASS);
                    a.dealloc(p, layout(LARGEST_CLASS, 16));
                    break;
                }
                ours.push(p);
            }
            assert_eq!(ours.len(), ARENA_SIZE / LARGEST_CLASS);
            // Freed, a block serves again.
            let p = ours[3];
            a.dealloc(p, layout(LARGEST_CLASS, 16));
            assert_eq!(a.alloc(layout(LARGEST_CLASS - 5, 8)), p);
        }
    }

    /// Threads allocating, growing and freeing at random, each block filled
    /// with its owner's mark and checked before it is freed: a block handed
    /// to two owners at once, or moved without its contents, shows.
    #[test]
    fn concurrent_use_never_hands_out_a_block_twice() {
        let a = arena!();
        std::thread::scope(|scope| {
            for thread in 0..4u8 {
                scope.spawn(move || {
                    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(thread);
                    let mut next = move || {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed
                    };
                    let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
                    for step in 0..20_000u32 {
                        let r = next();
                        let mark = (step as u8) ^ (thread << 6);
                        // SAFETY: blocks are written within their sizes
                        // and freed once, with their layouts.
                        unsafe {
                            match r % 4 {
                                0 | 1 => {
                                    let size = 1
                                        + (r >> 8) as usize
                                            % [64, 700, 9000][(r >> 40) as usize % 3];
                                    let p = a.alloc(layout(size, 8));
                                    p.write_bytes(mark, size);
                                    live.push((p, size, mark));
                                }
                                2 if !live.is_empty() => {
                                    let (p, size, mark) =
                                        live.swap_remove((r >> 8) as usize % live.len());
                                    let bytes = std::slice::from_raw_parts(p, size);
                                    assert!(
                                        bytes.iter().all(|&b| b == mark),
                                        "a block changed under its owner"
                                    );
                                    a.dealloc(p, layout(size, 8));
                                }
                                3 if !live.is_empty() => {
                                    let i = (r >> 8) as usize % live.len();
                                    let (p, size, old) = live[i];
                                    let new_size = 1 + (r >> 20) as usize % 3000;
                                    let q = a.realloc(p, layout(size, 8), new_size);
                                    let kept = std::slice::from_raw_parts(q, size.min(new_size));
                                    assert!(
                                        kept.iter().all(|&b| b == old),
                                        "realloc lost the contents"
                                    );
                                    q.write_bytes(mark, new_size);
                                    live[i] = (q, new_size, mark);
                                }
                                _ => {}
                            }
                        }
                    }
                    for (p, size, mark) in live {
                        // SAFETY: as above.
                        unsafe {
                            assert!(std::slice::from_raw_parts(p, size)
                                .iter()
                                .all(|&b| b == mark));
                            a.dealloc(p, layout(size, 8));
                        }
                    }
                });
            }
        });
    }
}
