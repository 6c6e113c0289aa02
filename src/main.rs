use clap::Parser;

// Transactions allocate many small strings; mimalloc keeps that cheap across threads.
#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// mimalloc, called the way C calls it for the alignments its blocks have
/// anyway: every mimalloc block of 16 bytes or more starts on a 16-byte
/// boundary and smaller blocks on an 8-byte one, so a layout whose alignment
/// is at most 16 and at most its size needs no aligned allocation (which
/// takes mimalloc's slower, over-allocating path for blocks over 1 KiB).
/// Other layouts go to the aligned calls.
struct Allocator;

/// Largest alignment every mimalloc block of at least that size has.
const PLAIN_ALIGN: usize = 16;

fn plain(align: usize, size: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY (all four): the calls pass the caller's layout on to mimalloc,
// which returns blocks aligned as `plain` states (or null on failure), and
// frees or resizes only pointers it returned.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            unsafe { libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            unsafe { libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            unsafe { libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast() }
        }
    }
}

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t` of the
/// mimalloc this crate builds; `tests/allocator.rs` checks it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed during a run stays with the process for reuse instead of
/// going back to the system after mimalloc's default second: traffic
/// allocates and frees at a steady rate, so a purge only buys the same pages
/// back later, zeroed by the kernel (on a replay of the benchmark capture it
/// halved the system time and saved about 6% of the CPU time). The peak stays
/// bounded by the configured limits. `MIMALLOC_PURGE_DELAY` in the environment wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's process-wide options (an integer
        // read when it decides to purge); no memory is touched.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
        }
    }
}

/// Heap memory comes in 4 KiB pages, not transparent huge pages: mimalloc
/// asks for huge pages on its arenas, and each first touch of one makes the
/// kernel zero 2 MiB, most of which a sensor with bounded tables never uses.
/// On replays of the benchmark capture this cut peak RSS from about 110 to
/// 68 MiB and the CPU time by about 5% (system time by a third).
/// `MIMALLOC_ALLOW_THP` in the environment wins.
fn small_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE with the flag 1 and unused arguments 0
        // only sets a flag on this process's memory; failure (an old kernel)
        // leaves huge pages allowed, which is harmless.
        #[allow(unsafe_code)]
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

fn main() {
    keep_freed_memory();
    small_pages();
    let cli = apitap::cli::Cli::parse();
    match apitap::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // output piped into `head` and the like: stop quietly
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.downcast_ref::<serde_json::Error>().and_then(|j| j.io_error_kind()) == Some(std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                std::process::exit(0);
            }
            eprintln!("apitap: error: {e:#}");
            std::process::exit(1);
        }
    }
}
