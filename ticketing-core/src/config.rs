//! Helpers for backend settings.

/// `url` with any password replaced by `***`, for log lines and `Debug` output:
/// `postgres://app:hunter2@db/x` → `postgres://app:***@db/x`. A value that is not a URL with
/// credentials comes back unchanged.
///
/// ```
/// use ticketing_core::config::redact_url;
///
/// assert_eq!(redact_url("nats://u:pw@h:4222"), "nats://u:***@h:4222");
/// assert_eq!(redact_url("nats://token@h:4222"), "nats://***@h:4222");
/// assert_eq!(redact_url("nats://h:4222,nats://a:b@g:4222"), "nats://h:4222,nats://a:***@g:4222");
/// assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
/// ```
pub fn redact_url(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

/// One URL's user info taken apart: `(scheme, userinfo, the rest after the `@`)`, or `None`
/// when it has no user info (or is not a URL).
///
/// ```
/// use ticketing_core::config::split_userinfo;
///
/// assert_eq!(split_userinfo("nats://u:pw@h:4222/x"), Some(("nats", "u:pw", "h:4222/x")));
/// assert_eq!(split_userinfo("nats://h:4222"), None);
/// ```
pub fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, _) = rest[..authority_end].rsplit_once('@')?;
    Some((scheme, userinfo, &rest[userinfo.len() + 1..]))
}

fn redact_one(url: &str) -> String {
    let Some((scheme, userinfo, rest)) = split_userinfo(url) else {
        return url.to_owned();
    };
    let userinfo = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        // A lone token (`nats://token@host`) is the secret itself.
        None => "***".to_owned(),
    };
    format!("{scheme}://{userinfo}@{rest}")
}
