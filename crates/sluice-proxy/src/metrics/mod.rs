//! `/metrics`: the gateway's counters in the Prometheus text format, served
//! on `metrics_listen_addr:metrics_port` (off while `metrics_port = 0`).
//!
//! Nothing here runs per transaction. The endpoint owns no counter: one
//! custom collector reads, at scrape time, what the gateway keeps anyway
//! for its console (pool counters and queues, the client registry, the
//! load balancer's host table) and encodes it. The pool gauges and the
//! per-database totals come from the same functions as `SHOW POOLS` and
//! `SHOW STATS` ([`crate::admin::show::pool_lines`],
//! [`crate::admin::show::totals_by_database`]), so the two always agree.
//! Names follow pgbouncer's `SHOW` columns as Debian's and the Prometheus
//! community's pgbouncer exporters name them, with `sluice_` in front of
//! `pgbouncer_` (`sluice_pools_client_active_connections`,
//! `sluice_stats_sql_transactions_pooled_total`, ...).
//!
//! A scrape takes the same short locks as a `SHOW` and lets go of them
//! before the answer is written, so a slow scraper holds nothing the
//! gateway needs; at most [`MAX_CONNECTIONS`] scrapers are served at once
//! (more are closed at once), each must send its request headers within
//! [`HEADER_TIMEOUT`], and a connection is closed after [`CONNECTION_LIFETIME`].
//!
//! Crates (all build on Rust 1.95):
//! - `prometheus-client` 0.26: the Prometheus project's own Rust client,
//!   with a [`Collector`] trait for values read at scrape time and both
//!   encoders, the Prometheus text format 0.0.4 and OpenMetrics (chosen by
//!   the scraper's `Accept` header, as Prometheus itself negotiates);
//! - `hyper` 1.x (`server`, `http1`) with `hyper-util`'s Tokio glue and
//!   `http-body-util`'s `Full` body: the minimal, widely used HTTP/1 server
//!   on the runtime the gateway already runs, with header read timeouts;
//!   no framework is needed for one path.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::server::Shared;

mod collector;

use collector::GatewayCollector;

/// Scraper connections served at once; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 16;
/// A scraper must send a request's headers within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A scraper connection is closed after this (after its answer in progress);
/// Prometheus simply reconnects.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// How long a connection past its lifetime may take to finish its answer.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics listener when `metrics_port` is set (`None`: metrics off).
/// `metrics_listen_addr` is an IP address, `*` (every IPv4 address) or
/// `localhost`.
pub async fn bind(config: &Config) -> io::Result<Option<TcpListener>> {
    let proxy = &config.proxy;
    if proxy.metrics_port == 0 {
        return Ok(None);
    }
    let ip = match proxy.metrics_listen_addr.as_str() {
        "*" => IpAddr::from([0, 0, 0, 0]),
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        other => other.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: metrics_listen_addr: `{other}` is not an IP address (or `*`)",
                    config.path.display()
                ),
            )
        })?,
    };
    let addr = SocketAddr::new(ip, proxy.metrics_port);
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {addr}: {e}"),
        )
    })?;
    tracing::info!(%addr, "serving metrics at /metrics");
    Ok(Some(listener))
}

/// Serves `/metrics` of `shared` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let registry = Arc::new(registry(shared));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: {MAX_CONNECTIONS} scrapers connected; closing another");
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            serve_connection(stream, registry).await;
            drop(slot);
        });
    }
}

/// One scraper's connection, for at most [`CONNECTION_LIFETIME`].
async fn serve_connection(stream: tokio::net::TcpStream, registry: Arc<Registry>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let answer = answer(&registry, &request);
        async move { Ok::<_, Infallible>(answer) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = tokio::time::sleep(CONNECTION_LIFETIME) => connection.as_mut().graceful_shutdown(),
    }
    let _ = tokio::time::timeout(FINISH_TIMEOUT, connection).await;
}

/// The answer to one request: the metrics at `GET /metrics`, else an error.
fn answer(registry: &Registry, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let (body, content_type) = match encode(registry, wants_openmetrics(request.headers())) {
        Ok(encoded) => encoded,
        Err(fmt::Error) => {
            tracing::error!("metrics: encoding failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether the scraper asks for OpenMetrics (Prometheus does, by default).
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| {
            let mut params = media.split(';').map(str::trim);
            let zero = |param: &str| {
                param.strip_prefix("q=").and_then(|q| q.parse::<f64>().ok()) == Some(0.0)
            };
            params.next() == Some("application/openmetrics-text") && !params.any(zero)
        })
}

/// The exposition text and its `Content-Type`: OpenMetrics, or the
/// Prometheus text format 0.0.4.
pub fn encode(
    registry: &Registry,
    openmetrics: bool,
) -> Result<(String, &'static str), fmt::Error> {
    let mut body = String::with_capacity(16 * 1024);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut body, registry)?;
        Ok((body, OPENMETRICS))
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?;
        Ok((
            body,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        ))
    }
}

/// A registry whose one collector reads `shared` at every scrape.
pub fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::with_prefix("sluice");
    registry.register_collector(Box::new(GatewayCollector { shared }));
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(&accept(prometheus)));
        assert!(!wants_openmetrics(&accept("text/plain")));
        assert!(!wants_openmetrics(&accept("*/*")));
        assert!(!wants_openmetrics(&accept(
            "application/openmetrics-text; q=0"
        )));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }
}
