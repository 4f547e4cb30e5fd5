//! Credentials read from Kubernetes Secrets: the Slack bot token, the Consul ACL token and the
//! webhooks' bearer tokens, all one type.

use std::fmt;

/// A credential (token) read from a Secret. Its `Debug` never shows the value and it has no
/// `Display`: the value leaves only through [`SecretToken::expose`], into a request header.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// Wraps a token as read from its Secret; surrounding whitespace (the trailing newline of a
    /// file-created Secret) is trimmed.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_owned())
    }

    /// The value, for the header that carries it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_trimmed_and_never_shown_in_debug_output() {
        let token = SecretToken::new(" xoxb-secret-value\n");
        assert_eq!(token.expose(), "xoxb-secret-value");
        let shown = format!("{token:?} {:?}", Some(&token));
        assert!(!shown.contains("secret-value"), "{shown}");
        assert_eq!(format!("{token:?}"), "SecretToken(<redacted>)");
    }
}
