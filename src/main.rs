//! The `cen-poller` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    cen_poller::cli::run(cen_poller::cli::Cli::parse())
}

/// glibc gives each thread that allocates under contention an arena of its own (up to 8 per
/// core); the blocking pool's threads then each keep freed pages, and the backfill's peak
/// RSS grew from 56 to 69 MiB over a million notifications (bench/backfill.sh). Two arenas
/// keep it flat and cost nothing measurable. `MALLOC_ARENA_MAX` in the environment, when
/// set, still wins. Runs before any thread exists.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
