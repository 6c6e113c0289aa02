use clap::Parser;

fn main() {
    let cli = apitap::cli::Cli::parse();
    match apitap::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("apitap: error: {e:#}");
            std::process::exit(1);
        }
    }
}
