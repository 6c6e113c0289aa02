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

fn main() {
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
