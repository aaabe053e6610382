//! `tailship run`: the agent.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tailship_sink::StdoutSink;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::agent::{Agent, DynSink};
use crate::config::Config;
use crate::telemetry::Telemetry;

pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let shutdown = shutdown_signals()?;
        survive_file_size_limit()?;
        serve(config, shutdown, Vec::new()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The sinks the configuration asks for, plus `extra` ones (the demo's). Building a cloud
/// sink resolves its credentials chain and region or project, without sending anything.
pub async fn sinks(config: &Config, extra: Vec<DynSink>) -> anyhow::Result<Vec<DynSink>> {
    let mut sinks = extra;
    if config.sinks.stdout.is_some() {
        sinks.push(Arc::new(StdoutSink::new(Box::new(std::io::stdout()))));
    }
    // [sinks.cloudwatch]
    if let Some(cloudwatch) = &config.sinks.cloudwatch {
        let sink = tailship_sink_cloudwatch::CloudWatchSink::connect(cloudwatch.clone(), |k| {
            std::env::var(k).ok()
        })
        .await?;
        sinks.push(Arc::new(sink));
    }
    // [sinks.gcm]
    if let Some(gcm) = &config.sinks.gcm {
        let descriptions = tailship_collector::CATALOG
            .iter()
            .map(|e| (e.name.to_owned(), e.description.to_owned()))
            .collect();
        let sink =
            tailship_sink_gcm::GcmSink::new(gcm.clone(), |k| std::env::var(k).ok(), descriptions)
                .await?;
        sinks.push(Arc::new(sink));
    }
    Ok(sinks)
}

/// Runs the HTTP endpoints and the agent until `shutdown`.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()>,
    extra_sinks: Vec<DynSink>,
) -> anyhow::Result<()> {
    let telemetry = Arc::new(Telemetry::new());
    let listener = TcpListener::bind(config.http.listen).await.with_context(|| {
        format!(
            "[http] listen = {}: cannot listen there (set [http] listen or TAILSHIP_HTTP_LISTEN)",
            config.http.listen
        )
    })?;
    tracing::info!(listen = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(crate::http::serve(
        listener,
        Arc::clone(&telemetry),
        async {
            let _ = stopped.await;
        },
    ));
    let agent = Agent::new(&config, sinks(&config, extra_sinks).await?, telemetry)?;
    let result = agent.run(shutdown).await;
    let _ = stop_http.send(());
    match http.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP endpoints stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "the HTTP endpoints task failed"),
        Ok(Ok(())) => {}
    }
    result
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once (the checkpoint is
/// written atomically, so exiting mid-write leaves the previous one intact).
fn shutdown_signals() -> anyhow::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("second signal: exiting now without flushing");
            std::process::exit(130);
        });
    })
}

/// A file size limit (`RLIMIT_FSIZE`, systemd's `LimitFSIZE=`) would kill the process with
/// SIGXFSZ on the checkpoint write that crosses it. With the signal handled, that write
/// fails with `EFBIG` instead, like a full disk: the checkpoint error is logged and counted,
/// the previous checkpoint stays whole, and nothing is sent until a write succeeds again.
fn survive_file_size_limit() -> anyhow::Result<()> {
    let mut xfsz =
        signal(SignalKind::from_raw(libc::SIGXFSZ)).context("installing the SIGXFSZ handler")?;
    tokio::spawn(async move {
        while xfsz.recv().await.is_some() {
            tracing::debug!("SIGXFSZ: a write went past the file size limit");
        }
    });
    Ok(())
}
