//! What must hold after a run beyond the load generator's consistency check: the payments
//! agree with the orders.

use std::time::Duration;

use ticketing_store::StoreSettings;
use ticketing_test_client::verify::Record;
use ticketing_test_client::{Client, Endpoints};

use crate::Store;

/// What the payments service holds, against the orders as their service shows them: a complete
/// order has exactly one charge; a cancelled one keeps none (a charge that lost the race with
/// the expiry is refunded); nothing is left pending (the repair settles what a kill
/// interrupted); every payment answered 201 is that charge or was refunded. Repeats until it
/// holds or `settle` is up; the disagreements left.
pub(crate) async fn payments_agree(
    store: Store,
    database: &str,
    record: &Record,
    paid: &[(String, String)],
    settle: Duration,
) -> Vec<String> {
    use ticketing_core::ticketing::payment::PaymentStatus;
    let settings = match store {
        Store::Postgres => StoreSettings::choose(None, Some(database), None),
        Store::Mongo => StoreSettings::choose(None, None, Some(database)),
    }
    .expect("store settings");
    let payments = settings
        .open_ticketing("payments")
        .await
        .expect("the payments database")
        .payments();
    let client = Client::new(Endpoints::single(&record.target));
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let mut issues = Vec::new();
        for order in &record.orders {
            let id = ticketing_core::Id::parse(&order.id).expect("an order id");
            let buyer = &record.users[order.buyer];
            let answer = client
                .resume(&buyer.email, &buyer.cookie)
                .order_of(&order.id)
                .await;
            let status = match answer.status {
                Some(_) => answer.body["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                None => format!("unreadable: {}", answer.text),
            };
            let attempts = payments.for_order(id).await.expect("payments readable");
            let count = |s: PaymentStatus| attempts.iter().filter(|p| p.status == s).count();
            let (charged, pending) = (
                count(PaymentStatus::Succeeded),
                count(PaymentStatus::Pending),
            );
            let wrong = match status.as_str() {
                _ if pending > 0 => Some(format!("{pending} attempt(s) still pending")),
                "complete" if charged != 1 => Some(format!("complete with {charged} charges")),
                "cancelled" if charged != 0 => {
                    Some(format!("cancelled with {charged} charge(s) kept"))
                }
                "complete" | "cancelled" => None,
                other => Some(format!("still {other:?}")),
            };
            if let Some(wrong) = wrong {
                issues.push(format!("order {}: {wrong} ({attempts:?})", order.id));
            }
        }
        for (payment, order) in paid {
            let id = ticketing_core::Id::parse(payment).expect("a payment id");
            match payments.get(id).await {
                Ok(p)
                    if p.order_id.to_string() == *order
                        && matches!(
                            p.status,
                            PaymentStatus::Succeeded | PaymentStatus::Refunded
                        ) => {}
                other => issues.push(format!(
                    "payment {payment} of order {order} answered 201: {other:?}"
                )),
            }
        }
        if issues.is_empty() || tokio::time::Instant::now() >= deadline {
            return issues;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
