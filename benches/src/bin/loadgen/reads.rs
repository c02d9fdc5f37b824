//! The read phase: `GET /api/tickets/:id` hammered against the limits of a bare axum handler
//! (and a bare axum + sqlx one), served by a process of its own, the targets taking turns.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The reads of one target of the read phase.
pub(crate) struct Reads {
    pub(crate) url: String,
    pub(crate) reads: u64,
    pub(crate) histogram: Histogram<u64>,
}

impl Reads {
    pub(crate) fn new(url: String) -> Self {
        Reads {
            url,
            reads: 0,
            histogram: Histogram::new(3).expect("histogram"),
        }
    }

    pub(crate) fn into_parts(self) -> (u64, Histogram<u64>) {
        (self.reads, self.histogram)
    }
}

/// Hammers `url` from `concurrency` workers for `time`; returns (requests, histogram).
pub(crate) async fn hammer(
    http: &reqwest::Client,
    url: String,
    concurrency: usize,
    time: Duration,
    bar: &ProgressBar,
) -> (u64, Histogram<u64>) {
    let deadline = Instant::now() + time;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, bar) = (http.clone(), url.clone(), bar.clone());
            tokio::spawn(async move {
                let mut histogram = Histogram::<u64>::new(3).expect("histogram");
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let response = http.get(&url).send().await.expect("request");
                    assert!(
                        response.status().is_success(),
                        "{url}: {}",
                        response.status()
                    );
                    let _ = response.bytes().await.expect("body");
                    histogram
                        .record(started.elapsed().as_micros() as u64)
                        .expect("auto-resizing histogram");
                    bar.inc(1);
                }
                histogram
            })
        })
        .collect();
    let mut total = Histogram::<u64>::new(3).expect("histogram");
    for worker in workers {
        total.add(worker.await.expect("worker")).expect("merge");
    }
    (total.len(), total)
}

pub(crate) async fn serve_bare(port: u16, database: Option<(String, String, u32)>) {
    let ticket = json!({"id": "6b0b5b640fede830f4a65464", "title": "concert", "price": 19.99,
                        "userId": "6b0b5b640fede830f4a65463", "version": 0});
    let mut app = axum::Router::new().route(
        "/ticket",
        axum::routing::get(move || async move { axum::Json(ticket.clone()) }),
    );
    if let Some((url, schema, pool_size)) = database {
        use std::str::FromStr;
        let options = sqlx::postgres::PgConnectOptions::from_str(&url)
            .expect("database URL")
            .options([("search_path", schema.as_str())]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(pool_size)
            .connect_with(options)
            .await
            .expect("connect");
        app = app.route(
            "/pg/tickets/{id}",
            axum::routing::get(
                move |axum::extract::Path(id): axum::extract::Path<String>| {
                    let pool = pool.clone();
                    async move { bare_pg_ticket(&pool, &id).await }
                },
            ),
        );
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}

/// The tickets store's `SELECT`, by hand: one row, mapped to the API's JSON.
pub(crate) async fn bare_pg_ticket(
    pool: &sqlx::PgPool,
    id: &str,
) -> Result<axum::Json<Value>, axum::http::StatusCode> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT id, title, price_cents, user_id, version, order_id FROM tickets WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR)?
    .ok_or(axum::http::StatusCode::NOT_FOUND)?;
    let cents: i64 = row.get("price_cents");
    let mut ticket = json!({
        "id": row.get::<String, _>("id"),
        "title": row.get::<String, _>("title"),
        "price": cents as f64 / 100.0,
        "userId": row.get::<String, _>("user_id"),
        "version": row.get::<i64, _>("version"),
    });
    if let Some(order) = row.get::<Option<String>, _>("order_id") {
        ticket["orderId"] = json!(order);
    }
    Ok(axum::Json(ticket))
}

pub(crate) fn spawn_bare(args: &Args) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut command = Command::new(std::env::current_exe().expect("exe"));
    command.args(["--serve-bare", &port.to_string()]);
    if let Some(url) = &args.database_url {
        command
            .env("LOADGEN_DATABASE_URL", url)
            .args(["--tickets-schema", &args.tickets_schema])
            .args(["--pool-size", &args.pool_size.to_string()]);
    }
    let mut child = command.stdout(Stdio::null()).spawn().expect("bare server");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("bare server did not start");
}
