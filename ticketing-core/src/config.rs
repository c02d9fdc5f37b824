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

fn redact_one(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let userinfo = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        // A lone token (`nats://token@host`) is the secret itself.
        None => "***".to_owned(),
    };
    format!("{scheme}://{userinfo}@{host}{tail}")
}
