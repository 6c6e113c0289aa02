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
            let broken_pipe = e
                .chain()
                .filter_map(|c| c.downcast_ref::<std::io::Error>())
                .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if broken_pipe {
                std::process::exit(0);
            }
            eprintln!("apitap: error: {e:#}");
            std::process::exit(1);
        }
    }
}
