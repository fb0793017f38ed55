//! `memcpy`, `memmove`, `memset` and `memcmp` for the static musl build on
//! x86-64, in place of musl's own.
//!
//! musl's are plain loops (its `memcmp` compares byte by byte), and loading
//! the component spends much of its copying and comparing in them: the musl
//! build of `lockfile` was no faster than the glibc one until they were
//! replaced (bench/README.md). These use the string instructions (`rep
//! movsb`/`rep stosb`, fast on every x86-64 of the last decade), two
//! overlapping loads for runs of up to 16 bytes, and word-wide compares.
//!
//! They are written in assembly, not Rust: compiled with link-time
//! optimisation, LLVM may recognise a copy loop inside `memcpy` as a call to
//! `memcpy`, and it crashed building one of the benchmark's programs with
//! the Rust version. The code is assembled on every x86-64 target under
//! names of our own (`lockfile_memcpy`…), so that the tests run on the usual
//! glibc build; only the musl build also gives them the C names, which a
//! static link then takes instead of musl's (anywhere else they would
//! interpose on the C library's).

// Each function has call-frame information (`.cfi_startproc`), a type and
// a size, so that debuggers and profilers name it and unwind through it;
// none touches the stack. (Local labels avoid 10 and 11, which some
// assemblers read as binary numbers.)
std::arch::global_asm!(
    ".text",
    // memcpy(d: rdi, s: rsi, n: rdx) -> d
    ".globl lockfile_memcpy",
    ".type lockfile_memcpy, @function",
    ".p2align 4",
    "lockfile_memcpy:",
    ".cfi_startproc",
    "    mov rax, rdi",
    "    cmp rdx, 16",
    "    jbe 2f",
    "    mov rcx, rdx",
    "    rep movsb",
    "    ret",
    // Up to 16 bytes: everything is loaded before anything is stored, so
    // memmove shares this path.
    "2:",
    "    cmp rdx, 8",
    "    jb 3f",
    "    mov rcx, [rsi]",
    "    mov r8, [rsi + rdx - 8]",
    "    mov [rdi], rcx",
    "    mov [rdi + rdx - 8], r8",
    "    ret",
    "3:",
    "    cmp rdx, 4",
    "    jb 4f",
    "    mov ecx, [rsi]",
    "    mov r8d, [rsi + rdx - 4]",
    "    mov [rdi], ecx",
    "    mov [rdi + rdx - 4], r8d",
    "    ret",
    "4:",
    "    test rdx, rdx",
    "    jz 5f",
    "    mov r9, rdx",
    "    shr r9, 1",
    "    movzx ecx, byte ptr [rsi]",
    "    movzx r8d, byte ptr [rsi + r9]",
    "    movzx r10d, byte ptr [rsi + rdx - 1]",
    "    mov [rdi], cl",
    "    mov [rdi + r9], r8b",
    "    mov [rdi + rdx - 1], r10b",
    "5:",
    "    ret",
    ".cfi_endproc",
    ".size lockfile_memcpy, . - lockfile_memcpy",
    // memmove(d: rdi, s: rsi, n: rdx) -> d
    ".globl lockfile_memmove",
    ".type lockfile_memmove, @function",
    ".p2align 4",
    "lockfile_memmove:",
    ".cfi_startproc",
    "    mov rax, rdi",
    "    cmp rdx, 16",
    "    jbe 2b",
    // Unless d lies inside s..s+n, a forward copy reads every byte before
    // overwriting it.
    "    mov rcx, rdi",
    "    sub rcx, rsi",
    "    cmp rcx, rdx",
    "    jb 6f",
    "    mov rcx, rdx",
    "    rep movsb",
    "    ret",
    // Backwards, 16 bytes at a time from the end, not `std; rep movsb`:
    // a backward string copy has no fast microcode and moves about a byte
    // a cycle, and wasmtime's decoding of the component shifts arrays up
    // often enough for it to have been 2% of a `lockfile run`. A chunk's
    // stores land above every byte not yet loaded (d > s); the first 16
    // bytes, which they may overwrite, are loaded before any store and
    // stored last, covering the 1-16 bytes the loop leaves.
    "6:",
    "    movdqu xmm0, [rsi]",
    "14:",
    "    movdqu xmm1, [rsi + rdx - 16]",
    "    movdqu [rdi + rdx - 16], xmm1",
    "    sub rdx, 16",
    "    cmp rdx, 16",
    "    ja 14b",
    "    movdqu [rdi], xmm0",
    "    ret",
    ".cfi_endproc",
    ".size lockfile_memmove, . - lockfile_memmove",
    // memset(d: rdi, c: esi, n: rdx) -> d
    ".globl lockfile_memset",
    ".type lockfile_memset, @function",
    ".p2align 4",
    "lockfile_memset:",
    ".cfi_startproc",
    "    mov r9, rdi",
    "    mov eax, esi",
    "    mov rcx, rdx",
    "    rep stosb",
    "    mov rax, r9",
    "    ret",
    ".cfi_endproc",
    ".size lockfile_memset, . - lockfile_memset",
    // memcmp(a: rdi, b: rsi, n: rdx) -> <0, 0, >0 as the first differing
    // byte of a is below, equal to or above b's (as unsigned bytes)
    ".globl lockfile_memcmp",
    ".type lockfile_memcmp, @function",
    ".p2align 4",
    "lockfile_memcmp:",
    ".cfi_startproc",
    "7:",
    "    cmp rdx, 8",
    "    jb 9f",
    "    mov rcx, [rdi]",
    "    mov r8, [rsi]",
    "    cmp rcx, r8",
    "    jne 8f",
    "    add rdi, 8",
    "    add rsi, 8",
    "    sub rdx, 8",
    "    jmp 7b",
    // Byte-swapped, the first byte in memory is the most significant: the
    // words order as their bytes do. -1 if below (carry), else 1.
    "8:",
    "    bswap rcx",
    "    bswap r8",
    "    cmp rcx, r8",
    "    sbb eax, eax",
    "    or eax, 1",
    "    ret",
    "9:",
    "    xor eax, eax",
    "    test rdx, rdx",
    "    jz 13f",
    "12:",
    "    movzx eax, byte ptr [rdi]",
    "    movzx ecx, byte ptr [rsi]",
    "    sub eax, ecx",
    "    jnz 13f",
    "    inc rdi",
    "    inc rsi",
    "    dec rdx",
    "    jnz 12b",
    "13:",
    "    ret",
    ".cfi_endproc",
    ".size lockfile_memcmp, . - lockfile_memcmp",
);

// The C names, which a static link takes before musl's. `bcmp` is what
// Rust's slice equality calls; `memcmp` answers it.
#[cfg(target_env = "musl")]
std::arch::global_asm!(
    ".globl memcpy",
    ".type memcpy, @function",
    ".set memcpy, lockfile_memcpy",
    ".globl memmove",
    ".type memmove, @function",
    ".set memmove, lockfile_memmove",
    ".globl memset",
    ".type memset, @function",
    ".set memset, lockfile_memset",
    ".globl memcmp",
    ".type memcmp, @function",
    ".set memcmp, lockfile_memcmp",
    ".globl bcmp",
    ".type bcmp, @function",
    ".set bcmp, lockfile_memcmp",
);

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn lockfile_memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8;
        fn lockfile_memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8;
        fn lockfile_memset(d: *mut u8, c: i32, n: usize) -> *mut u8;
        fn lockfile_memcmp(a: *const u8, b: *const u8, n: usize) -> i32;
    }

    /// Every length to 80 and every offset to 16, against the slice methods
    /// (which the test build takes from glibc).
    #[test]
    fn memcpy_and_memmove_agree_with_the_slice_methods() {
        let source: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..80 {
            for off in 0..16 {
                let mut ours = vec![0xAAu8; 200];
                let mut want = ours.clone();
                // SAFETY: both buffers are 200 bytes, off + n < 100.
                let r = unsafe {
                    lockfile_memcpy(ours.as_mut_ptr().add(off), source.as_ptr().add(3), n)
                };
                assert_eq!(r, ours.as_mut_ptr().wrapping_add(off));
                want[off..off + n].copy_from_slice(&source[3..3 + n]);
                assert_eq!(ours, want, "memcpy n={n} off={off}");

                for (from, to) in [(20, 20 + off), (20 + off, 20)] {
                    let mut ours = source.clone();
                    let mut want = source.clone();
                    // SAFETY: from, to < 40 and n < 80, within 200 bytes.
                    let r = unsafe {
                        let d = ours.as_mut_ptr().add(to);
                        lockfile_memmove(d, ours.as_ptr().add(from), n)
                    };
                    assert_eq!(r, ours.as_mut_ptr().wrapping_add(to));
                    want.copy_within(from..from + n, to);
                    assert_eq!(ours, want, "memmove n={n} from={from} to={to}");
                }
            }
        }
    }

    /// Longer moves over every overlap up to 48 bytes, both ways: the
    /// backward copy goes by 16-byte chunks and a head, so lengths around
    /// multiples of 16 and distances under 16 are where it could go wrong.
    #[test]
    fn memmove_moves_long_overlapping_runs_both_ways() {
        let source: Vec<u8> = (0..1200u32).map(|i| (i * 13 + i / 251) as u8).collect();
        let lengths = (17..=200).chain([255, 256, 257, 511, 512, 513, 1000]);
        for n in lengths {
            for shift in 1..=48 {
                for (from, to) in [(100, 100 + shift), (100 + shift, 100)] {
                    let mut ours = source.clone();
                    let mut want = source.clone();
                    // SAFETY: from, to <= 148 and n <= 1000, within 1200 bytes.
                    unsafe {
                        let d = ours.as_mut_ptr().add(to);
                        lockfile_memmove(d, ours.as_ptr().add(from), n);
                    }
                    want.copy_within(from..from + n, to);
                    assert_eq!(ours, want, "memmove n={n} from={from} to={to}");
                }
            }
        }
    }

    #[test]
    fn memset_sets_exactly_the_bytes_asked() {
        for n in 0..70 {
            let mut buf = vec![1u8; 80];
            // SAFETY: 3 + n < 80.
            let r = unsafe { lockfile_memset(buf.as_mut_ptr().add(3), 0x1FE, n) };
            assert_eq!(r, buf.as_mut_ptr().wrapping_add(3));
            for (i, &b) in buf.iter().enumerate() {
                let want = if (3..3 + n).contains(&i) { 0xFE } else { 1 };
                assert_eq!(b, want, "n={n} i={i}");
            }
        }
    }

    #[test]
    fn memcmp_orders_as_unsigned_bytes_at_the_first_difference() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            // SAFETY: both are n bytes long.
            assert_eq!(
                unsafe { lockfile_memcmp(a.as_ptr(), a.clone().as_ptr(), n) },
                0
            );
            for at in 0..n {
                for (x, y) in [(0x01u8, 0xFFu8), (0x80, 0x7F), (5, 6)] {
                    let (mut l, mut r) = (a.clone(), a.clone());
                    l[at] = x;
                    r[at] = y;
                    // A later difference the other way must not count.
                    if at + 1 < n {
                        l[n - 1] = 0xFF;
                        r[n - 1] = 0;
                    }
                    // SAFETY: both are n bytes long.
                    let got = unsafe { lockfile_memcmp(l.as_ptr(), r.as_ptr(), n) };
                    assert_eq!(got.signum(), l.cmp(&r) as i32, "n={n} at={at} {x} {y}");
                    // SAFETY: as above.
                    let back = unsafe { lockfile_memcmp(r.as_ptr(), l.as_ptr(), n) };
                    assert_eq!(back.signum(), r.cmp(&l) as i32, "n={n} at={at} {y} {x}");
                }
            }
        }
    }
}
