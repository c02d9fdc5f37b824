//! The ingress stand-in of tests and benchmarks that run the services as processes: routes by
//! path prefix, as the original's ingress does, round robin over a service's processes; a
//! process that refuses the connection (killed, restarting) is skipped for the next, as a load
//! balancer drops an endpoint that fails; when all refuse, 502.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::process::lasting_port;

/// The five services: the four with routes, then expiration (its port serves only its
/// operations endpoints).
pub const SERVICES: [&str; 5] = ["auth", "tickets", "orders", "payments", "expiration"];

/// Ports of the services' processes, by service: several per service when it runs replicated.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The auth service's processes.
    pub auth: Vec<u16>,
    /// The tickets service's processes.
    pub tickets: Vec<u16>,
    /// The orders service's processes.
    pub orders: Vec<u16>,
    /// The payments service's processes.
    pub payments: Vec<u16>,
    /// The expiration service's processes.
    pub expiration: Vec<u16>,
    /// Round robin over a service's processes.
    next: Arc<AtomicUsize>,
}

impl Ports {
    /// `per_service` free ports for each service.
    pub fn free(per_service: usize) -> Self {
        Self::free_each(|_| per_service)
    }

    /// `processes(service)` free ports for each service.
    pub fn free_each(processes: impl Fn(&str) -> usize) -> Self {
        let ports = |service: &str| (0..processes(service)).map(|_| lasting_port()).collect();
        Ports {
            auth: ports("auth"),
            tickets: ports("tickets"),
            orders: ports("orders"),
            payments: ports("payments"),
            expiration: ports("expiration"),
            next: Arc::default(),
        }
    }

    /// The ports of service `name`.
    pub fn of(&self, name: &str) -> &[u16] {
        match name {
            "auth" => &self.auth,
            "tickets" => &self.tickets,
            "orders" => &self.orders,
            "payments" => &self.payments,
            _ => &self.expiration,
        }
    }

    /// Every process: (service, its index among the service's, port).
    pub fn all(&self) -> Vec<(&'static str, usize, u16)> {
        SERVICES
            .iter()
            .flat_map(|service| {
                self.of(service)
                    .iter()
                    .enumerate()
                    .map(|(index, port)| (*service, index, *port))
            })
            .collect()
    }
}

/// Serves the ingress on `listener` until the task is dropped; upstream requests time out
/// after `timeout`.
pub async fn serve(listener: tokio::net::TcpListener, ports: Ports, timeout: Duration) {
    let upstream = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .expect("an HTTP client");
    let app = axum::Router::new()
        .fallback(proxy)
        .with_state((upstream, ports));
    let _ = axum::serve(listener, app).await;
}

/// Forwards one request to a process of the service its path names.
async fn proxy(
    State((http, ports)): State<(reqwest::Client, Ports)>,
    request: Request,
) -> Response {
    let path = request.uri().path();
    let service = if path.starts_with("/api/users") {
        "auth"
    } else if path.starts_with("/api/tickets") {
        "tickets"
    } else if path.starts_with("/api/orders") {
        "orders"
    } else if path.starts_with("/api/payments") {
        "payments"
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or(path, |pq| pq.as_str())
        .to_owned();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let replicas = ports.of(service);
    let first = ports.next.fetch_add(1, Ordering::Relaxed);
    for k in 0..replicas.len() {
        let port = replicas[(first + k) % replicas.len()];
        let mut upstream = http
            .request(
                parts.method.clone(),
                format!("http://127.0.0.1:{port}{path_and_query}"),
            )
            .body(body.clone());
        for (name, value) in &parts.headers {
            if name != reqwest::header::HOST {
                upstream = upstream.header(name, value);
            }
        }
        match upstream.send().await {
            Ok(answer) => {
                let mut response = Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    response = response.header(name, value);
                }
                let bytes = answer.bytes().await.unwrap_or_default();
                return response.body(Body::from(bytes)).unwrap();
            }
            // Nothing was sent: another process may take it.
            Err(error) if error.is_connect() => {}
            Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    StatusCode::BAD_GATEWAY.into_response()
}
