//! Field rules shared by the services.

/// Whether `email` (already trimmed) is a plausible address: one `@`, a local part of at most
/// 64 characters without spaces, a domain of dot-separated labels (letters, digits, hyphens,
/// not at a label's ends) ending in a top-level domain of at least two letters; 254 characters
/// at most. The rules of express-validator's `isEmail`, which the original system used, in
/// substance.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > 254 {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::is_valid_email;

    #[test]
    fn plausible_addresses_pass() {
        for email in [
            "test@test.com",
            "a.b+tag@sub.example.co.uk",
            "x_y@d-1.io",
            "Jane.Doe@Example.COM",
        ] {
            assert!(is_valid_email(email), "{email}");
        }
    }

    #[test]
    fn implausible_addresses_fail() {
        for email in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a@b.c",
            "a b@c.com",
            "a@@b.com",
            "a@b..com",
            ".a@b.com",
            "a.@b.com",
            "a@-b.com",
            "a@b-.com",
            "a@b.c0m",
            "a@b.com.",
            "a@b_c.com",
        ] {
            assert!(!is_valid_email(email), "{email}");
        }
        assert!(!is_valid_email(&format!("{}@b.com", "a".repeat(65))));
    }
}
