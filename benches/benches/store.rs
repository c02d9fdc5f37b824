//! Versioned updates on PostgreSQL (`DATABASE_URL`): `PgTicketStore` against bare sqlx
//! running the same statements, in one run on the same server.
//!
//! - `update`: 1,000 chained versioned updates (`UPDATE ... WHERE id = $1 AND version = $n`),
//!   each naming the version the previous one returned;
//! - `read_update`: 1,000 times read the ticket, then update it with the version read;
//! - `update_event`: 1,000 chained versioned updates, each with its `ticket:updated` event
//!   through the outbox: bare sqlx runs `BEGIN; UPDATE ...; INSERT INTO outbox ...; COMMIT`,
//!   `pg_ticket_store` its `update_announcing`, `append_own_tx` the same UPDATE in a
//!   transaction of the caller's own with the event written by `postgres::append` (the generic
//!   path a service of another domain takes).
//!
//! `cargo bench -p ticketing-benches --bench store`

use std::str::FromStr;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgPool, Row};
use ticketing_core::ticketing::Price;
use ticketing_core::ticketing::events::TicketUpdated;
use ticketing_core::ticketing::store::{Ticket, TicketStore};
use ticketing_core::{Id, OutgoingMessage, PublishError, outbox};
use ticketing_store::postgres::{PgDatabase, PgTicketStore, append};

const UPDATES: u64 = 1_000;

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn database() -> PgDatabase {
    let url = database_url();
    let admin = PgPool::connect(&url)
        .await
        .expect("PostgreSQL must be running");
    let schema = format!("bench_{}", Id::new());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&admin)
        .await
        .expect("schema");
    let options = PgConnectOptions::from_str(&url)
        .expect("url")
        .options([("search_path", schema.as_str())]);
    let db = PgDatabase::connect_with(options, 4).await.expect("connect");
    db.migrate_ticketing().await.expect("migrate");
    db
}

async fn drop_schema(db: &PgDatabase) {
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(db.pool())
        .await
        .expect("schema");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(db.pool())
    .await
    .expect("drop");
}

async fn fresh_ticket(store: &PgTicketStore) -> Ticket {
    store
        .create(Ticket {
            id: Id::new(),
            title: "concert".into(),
            price: Price::from_cents(2000).expect("price"),
            user_id: Id::new(),
            version: 0,
            order_id: None,
        })
        .await
        .expect("create")
}

async fn store_updates(store: &PgTicketStore, mut ticket: Ticket, read_first: bool) {
    for i in 0..UPDATES {
        if read_first {
            ticket = store.get(ticket.id).await.expect("get");
        }
        ticket.price = Price::from_cents(2000 + i).expect("price");
        ticket = store.update(&ticket).await.expect("update");
    }
}

async fn bare_updates(pool: &PgPool, ticket: Ticket, read_first: bool) {
    let id = ticket.id.to_string();
    let mut version: i64 = 0;
    for i in 0..UPDATES {
        if read_first {
            let row = sqlx::query("SELECT id, title, price_cents, user_id, version, order_id FROM tickets WHERE id = $1")
                .bind(&id)
                .fetch_one(pool)
                .await
                .expect("select");
            version = row.get("version");
        }
        let row = sqlx::query(
            "UPDATE tickets SET title = $2, price_cents = $3, order_id = $4, version = version + 1 \
             WHERE id = $1 AND version = $5 RETURNING id, title, price_cents, user_id, version, order_id",
        )
        .bind(&id)
        .bind("concert")
        .bind(2000 + i as i64)
        .bind(None::<String>)
        .bind(version)
        .fetch_optional(pool)
        .await
        .expect("update")
        .expect("version matched");
        version = row.get("version");
    }
}

/// The `ticket:updated` event of a ticket, as the tickets service announces it.
fn announce(ticket: &Ticket) -> Result<Vec<OutgoingMessage>, PublishError> {
    outbox::announce(&TicketUpdated {
        id: ticket.id,
        version: ticket.version,
        title: ticket.title.clone(),
        price: ticket.price,
        user_id: ticket.user_id,
        order_id: ticket.order_id,
    })
}

async fn store_updates_with_event(store: &PgTicketStore, mut ticket: Ticket) {
    for i in 0..UPDATES {
        ticket.price = Price::from_cents(2000 + i).expect("price");
        ticket = store
            .update_announcing(&ticket, &announce)
            .await
            .expect("update");
    }
}

const UPDATE_RETURNING: &str = "UPDATE tickets SET title = $2, price_cents = $3, order_id = $4, version = version + 1 \
     WHERE id = $1 AND version = $5 RETURNING id, title, price_cents, user_id, version, order_id";

/// The versioned UPDATE of `ticket` to price 20.00 + `i` cents, inside `tx`.
async fn update_in(tx: &mut sqlx::PgConnection, ticket: &mut Ticket, i: u64) {
    let row = sqlx::query(UPDATE_RETURNING)
        .bind(ticket.id.to_string())
        .bind("concert")
        .bind(2000 + i as i64)
        .bind(None::<String>)
        .bind(ticket.version as i64)
        .fetch_optional(&mut *tx)
        .await
        .expect("update")
        .expect("version matched");
    ticket.version = row.get::<i64, _>("version") as u64;
    ticket.price = Price::from_cents(2000 + i).expect("price");
}

/// The update in a transaction of the caller's own, the event appended by the SDK.
async fn own_tx_updates_with_event(pool: &PgPool, mut ticket: Ticket) {
    let id = ticket.id.to_string();
    for i in 0..UPDATES {
        let mut tx = pool.begin().await.expect("begin");
        update_in(&mut tx, &mut ticket, i).await;
        let event = announce(&ticket).expect("encode");
        append(&mut tx, &format!("ticket:{id}"), &event)
            .await
            .expect("append");
        tx.commit().await.expect("commit");
    }
}

/// Bare sqlx: the same UPDATE and the same INSERT into the outbox, in one transaction.
async fn bare_updates_with_event(pool: &PgPool, mut ticket: Ticket) {
    let id = ticket.id.to_string();
    for i in 0..UPDATES {
        let mut tx = pool.begin().await.expect("begin");
        update_in(&mut tx, &mut ticket, i).await;
        let event = &announce(&ticket).expect("encode")[0];
        sqlx::query(
            "INSERT INTO outbox (key, subject, payload, headers, message_id) \
             VALUES ($1, $2, $3, $4::jsonb, $5)",
        )
        .bind(format!("ticket:{id}"))
        .bind(&event.subject)
        .bind(event.payload.as_ref())
        .bind(serde_json::to_string(&event.headers).expect("headers"))
        .bind(event.message_id.as_deref())
        .execute(&mut *tx)
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
    }
}

fn versioned_updates(c: &mut Criterion) {
    let runtime = ticketing_benches::runtime();
    let db = runtime.block_on(database());
    let store = db.tickets();
    let mut group = c.benchmark_group("pg_versioned_updates_1000");
    group.sample_size(10);
    group.throughput(Throughput::Elements(UPDATES));
    for read_first in [false, true] {
        let name = if read_first { "read_update" } else { "update" };
        group.bench_function(BenchmarkId::new("bare_sqlx", name), |b| {
            b.to_async(&runtime).iter(|| async {
                let ticket = fresh_ticket(&store).await;
                bare_updates(db.pool(), ticket, read_first).await;
            });
        });
        group.bench_function(BenchmarkId::new("pg_ticket_store", name), |b| {
            b.to_async(&runtime).iter(|| async {
                let ticket = fresh_ticket(&store).await;
                store_updates(&store, ticket, read_first).await;
            });
        });
    }
    group.bench_function(BenchmarkId::new("bare_sqlx", "update_event"), |b| {
        b.to_async(&runtime).iter(|| async {
            let ticket = fresh_ticket(&store).await;
            bare_updates_with_event(db.pool(), ticket).await;
        });
    });
    group.bench_function(BenchmarkId::new("pg_ticket_store", "update_event"), |b| {
        b.to_async(&runtime).iter(|| async {
            let ticket = fresh_ticket(&store).await;
            store_updates_with_event(&store, ticket).await;
        });
    });
    group.bench_function(BenchmarkId::new("append_own_tx", "update_event"), |b| {
        b.to_async(&runtime).iter(|| async {
            let ticket = fresh_ticket(&store).await;
            own_tx_updates_with_event(db.pool(), ticket).await;
        });
    });
    group.finish();
    runtime.block_on(drop_schema(&db));
}

criterion_group!(benches, versioned_updates);
criterion_main!(benches);
