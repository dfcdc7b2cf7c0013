use clap::Parser;

fn main() -> std::process::ExitCode {
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
