use clap::Parser;

// Transactions allocate many small strings; mimalloc keeps that cheap across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
