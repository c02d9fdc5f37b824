use axum::Json;
use axum::extract::State;

use crate::models::ProviderJson;
use crate::provider::FakeProvider;
use crate::startup::PaymentsState;

/// `GET /api/payments/provider`: which provider charges cards, and the test tokens it takes
/// (the fake's; none for Stripe, whose tokens come from Stripe.js). The web client shows its
/// pay form from this. Public: it says nothing about any order.
#[utoipa::path(
    get, path = "/api/payments/provider", tag = "payments",
    responses(
        (status = 200, description = "The provider on", body = ProviderJson),
        ticketing_common::error::EdgeErrors,
    )
)]
pub async fn provider(State(state): State<PaymentsState>) -> Json<ProviderJson> {
    let provider = state.provider.name();
    let test_tokens = match provider {
        "fake" => FakeProvider::TEST_TOKENS
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        _ => Vec::new(),
    };
    Json(ProviderJson {
        provider: provider.to_owned(),
        test_tokens,
    })
}
