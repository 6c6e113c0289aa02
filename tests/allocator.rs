//! The mimalloc option `src/main.rs` sets by position is the one it names.

/// `MI_OPTION_PURGE_DELAY` in `src/main.rs`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[test]
fn the_purge_delay_option_main_sets_is_mimallocs_purge_delay() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        eprintln!("NOTICE: skipped, MIMALLOC_PURGE_DELAY is set in the environment");
        return;
    }
    // purge_delay is the only mimalloc option whose default is 1000 (ms);
    // the option list of the binding has the length of that mimalloc's
    // SAFETY: reads a process-wide integer option.
    #[allow(unsafe_code)]
    let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    assert_eq!(delay, 1000, "option {MI_OPTION_PURGE_DELAY} is not mimalloc's purge delay: update src/main.rs");
    assert_eq!(libmimalloc_sys::_mi_option_last, 47, "mimalloc's options changed: check MI_OPTION_PURGE_DELAY in src/main.rs");
    // and setting it is what main does
    #[allow(unsafe_code)]
    let set = unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    };
    assert_eq!(set, -1);
}
