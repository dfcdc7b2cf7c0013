use clap::Parser;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so a closed pipe (`runner plan | head -1`) turns
    // every later println! into a panic. Restore the default: the process
    // ends quietly when its reader goes away, like any Unix tool.
    // SAFETY: called first thing, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Unwrapped lines: error text stays greppable and paths stay whole.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    let cli = runner::cli::Cli::parse();
    match runner::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            std::process::ExitCode::FAILURE
        }
    }
}
