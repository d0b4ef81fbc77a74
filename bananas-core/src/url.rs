//! Broker URLs in messages and logs: [`redact`] hides the password. The one
//! copy, here because both the runtime and the Redis broker print URLs.

/// Hides the password in a URL for logging.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_the_credentials_and_keeps_the_rest() {
        assert_eq!(
            redact("redis://user:secret@h:6379/0?prefix=app"),
            "redis://***@h:6379/0?prefix=app"
        );
        assert_eq!(redact("redis://:p@ss@h:6379"), "redis://***@h:6379");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact("memory://"), "memory://");
    }
}
