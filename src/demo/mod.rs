//! `pgwarden demo` (being written).

/// Options of `pgwarden demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Runs the demo.
pub async fn run(_args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("demo not built yet".into())
}
