//! The ticket as the API shows it, and the events it becomes.

use serde::Serialize;
use serde_json::Value;
use ticketing_common::{ApiError, JsonBody, Validation};
use ticketing_core::ticketing::events::{TicketCreated, TicketUpdated};
use ticketing_core::ticketing::store::Ticket;
use ticketing_core::ticketing::{Price, PriceError};
use ticketing_core::{Id, OutgoingMessage, PublishError, Version, outbox};

/// Ticket JSON: `{id, title, price, userId, version, orderId?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Ticket)]
pub struct TicketJson {
    /// Id (24 hex characters).
    #[schema(value_type = String, pattern = "^[0-9a-f]{24}$")]
    pub id: Id,
    /// Title.
    pub title: String,
    /// Price, a JSON number with at most 2 decimals.
    #[schema(value_type = f64, minimum = 0.01, maximum = 1000000)]
    pub price: Price,
    /// The seller.
    #[schema(value_type = String, pattern = "^[0-9a-f]{24}$")]
    pub user_id: Id,
    /// Version.
    #[schema(value_type = u64)]
    pub version: Version,
    /// The order holding it, while reserved.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9a-f]{24}$")]
    pub order_id: Option<Id>,
}

/// The body of `POST /api/tickets` and `PUT /api/tickets/{id}`.
#[derive(Debug, utoipa::ToSchema)]
pub struct TicketRequest {
    /// 1 to 200 characters, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// Greater than 0, at most 1,000,000, at most 2 decimals; a number or a numeric string.
    pub price: f64,
}

impl From<Ticket> for TicketJson {
    fn from(t: Ticket) -> Self {
        TicketJson {
            id: t.id,
            title: t.title,
            price: t.price,
            user_id: t.user_id,
            version: t.version,
            order_id: t.order_id,
        }
    }
}

/// `ticket:created` for a new ticket.
pub fn created_event(t: &Ticket) -> TicketCreated {
    TicketCreated {
        id: t.id,
        version: t.version,
        title: t.title.clone(),
        price: t.price,
        user_id: t.user_id,
    }
}

/// `ticket:updated` for a ticket's current state.
pub fn updated_event(t: &Ticket) -> TicketUpdated {
    TicketUpdated {
        id: t.id,
        version: t.version,
        title: t.title.clone(),
        price: t.price,
        user_id: t.user_id,
        order_id: t.order_id,
    }
}

/// Announces a new ticket: `ticket:created`, committed with it.
pub fn announce_created(t: &Ticket) -> Result<Vec<OutgoingMessage>, PublishError> {
    outbox::announce(&created_event(t))
}

/// Announces a changed ticket: `ticket:updated`, committed with the change.
pub fn announce_updated(t: &Ticket) -> Result<Vec<OutgoingMessage>, PublishError> {
    outbox::announce(&updated_event(t))
}

/// A valid ticket body: `{title, price}`, for listing or editing a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInput {
    /// The title, trimmed.
    pub title: String,
    /// The price.
    pub price: Price,
}

impl TryFrom<&JsonBody> for TicketInput {
    type Error = ApiError;

    /// Every failed rule is reported at once (400, one entry per field).
    fn try_from(body: &JsonBody) -> Result<Self, ApiError> {
        let (title, price) = Validation::both(
            ("title", title_of(body.get("title"))),
            ("price", price_of(body.get("price"))),
        )?;
        Ok(TicketInput { title, price })
    }
}

/// The longest title, in characters (Unicode scalar values).
pub const TITLE_MAX_CHARS: usize = 200;

/// The title rule: a string of 1 to [`TITLE_MAX_CHARS`] characters once trimmed, without
/// control characters (a title is copied into every event and listing of its ticket, and a NUL
/// cannot be stored by PostgreSQL). Returns the trimmed title.
pub fn title_of(value: Option<&Value>) -> Result<String, String> {
    let title = value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "Title is required".to_owned())?;
    if title.chars().count() > TITLE_MAX_CHARS {
        return Err(format!(
            "Title must be at most {TITLE_MAX_CHARS} characters"
        ));
    }
    if title.chars().any(char::is_control) {
        return Err("Title must not contain control characters".to_owned());
    }
    Ok(title.to_owned())
}

/// The price rule: a JSON number or numeric string, greater than 0, at most 2 decimals, at
/// most 1,000,000.
pub fn price_of(value: Option<&Value>) -> Result<Price, String> {
    let parsed = match value {
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(units), _, _) if units > 1_000_000 => Err(PriceError::TooLarge),
            (Some(units), _, _) => Price::from_cents(units * 100),
            (None, Some(_), _) => Err(PriceError::NotPositive),
            (None, None, Some(value)) => Price::from_f64(value),
            _ => Err(PriceError::NotANumber),
        },
        Some(Value::String(text)) => text.parse(),
        _ => Err(PriceError::NotANumber),
    };
    parsed.map_err(|e| match e {
        PriceError::TooPrecise => "Price must have at most 2 decimal places".to_owned(),
        PriceError::TooLarge => "Price must be at most 1000000".to_owned(),
        _ => "Price must be greater than 0".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prices_follow_the_api_rules() {
        let cents = |v: Value| price_of(Some(&v)).map(Price::cents);
        assert_eq!(cents(json!(20)), Ok(2000));
        assert_eq!(cents(json!(19.99)), Ok(1999));
        assert_eq!(cents(json!("19.99")), Ok(1999));
        assert_eq!(cents(json!(1_000_000)), Ok(100_000_000));
        for bad in [
            json!(0),
            json!(-10),
            json!("-10"),
            json!("abc"),
            json!(null),
            json!(true),
            json!([1]),
        ] {
            assert_eq!(
                cents(bad.clone()),
                Err("Price must be greater than 0".to_owned()),
                "{bad}"
            );
        }
        assert_eq!(
            cents(json!(1.999)),
            Err("Price must have at most 2 decimal places".to_owned())
        );
        assert_eq!(
            cents(json!(1_000_001)),
            Err("Price must be at most 1000000".to_owned())
        );
        assert_eq!(
            cents(json!(1e300)),
            Err("Price must be at most 1000000".to_owned())
        );
        assert_eq!(
            price_of(None),
            Err("Price must be greater than 0".to_owned())
        );
    }

    #[test]
    fn titles_must_not_be_blank() {
        assert_eq!(
            title_of(Some(&json!("  concert "))),
            Ok("concert".to_owned())
        );
        for bad in [json!(""), json!("   "), json!(5), json!(null)] {
            assert!(title_of(Some(&bad)).is_err(), "{bad}");
        }
        assert!(title_of(None).is_err());
    }

    proptest::proptest! {
        #[test]
        fn a_title_either_passes_the_rules_or_is_refused_with_a_message(title in "\\PC{0,10}[\\x00-\\x1f]?\\PC{0,250}") {
            match title_of(Some(&json!(title))) {
                Ok(kept) => {
                    proptest::prop_assert!(!kept.is_empty() && kept.chars().count() <= TITLE_MAX_CHARS);
                    proptest::prop_assert!(!kept.chars().any(char::is_control));
                    proptest::prop_assert_eq!(kept.as_str(), title.trim());
                }
                Err(message) => proptest::prop_assert!(message.starts_with("Title")),
            }
        }

        #[test]
        fn any_json_price_is_a_price_or_a_message(value in proptest::prelude::any::<f64>(), text in "[-0-9.e ]{0,12}") {
            for candidate in [json!(value), json!(text)] {
                match price_of(Some(&candidate)) {
                    Ok(price) => proptest::prop_assert!(price.cents() >= 1 && price <= Price::MAX),
                    Err(message) => proptest::prop_assert!(message.starts_with("Price")),
                }
            }
        }
    }

    #[test]
    fn titles_are_bounded_and_printable() {
        let at_limit = "é".repeat(TITLE_MAX_CHARS);
        assert_eq!(title_of(Some(&json!(at_limit))), Ok(at_limit.clone()));
        assert_eq!(
            title_of(Some(&json!(format!("{at_limit}x")))),
            Err("Title must be at most 200 characters".to_owned())
        );
        for bad in [
            "a\u{0}b",
            "line\nbreak",
            "tab\there",
            "bell\u{7}",
            "del\u{7f}",
        ] {
            assert_eq!(
                title_of(Some(&json!(bad))),
                Err("Title must not contain control characters".to_owned()),
                "{bad:?}"
            );
        }
        assert_eq!(
            title_of(Some(&json!("Café — 🎫 ünïcode"))),
            Ok("Café — 🎫 ünïcode".to_owned())
        );
    }

    #[test]
    fn ticket_json_has_the_original_field_names() {
        let t = Ticket {
            id: Id::from_bytes([1; 12]),
            title: "t".into(),
            price: Price::from_cents(1050).unwrap(),
            user_id: Id::from_bytes([2; 12]),
            version: 3,
            order_id: None,
        };
        let json = serde_json::to_value(TicketJson::from(t)).unwrap();
        assert_eq!(
            json,
            json!({"id": "010101010101010101010101", "title": "t", "price": 10.5,
                                "userId": "020202020202020202020202", "version": 3})
        );
    }
}
