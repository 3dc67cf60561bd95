//! Validated values: once parsed, the rest of the code cannot hold an invalid one.

use std::fmt;

/// Longest message body, in characters.
pub const MAX_BODY_CHARS: usize = 4000;
/// Longest `client_msg_id`, in characters.
pub const MAX_CLIENT_MSG_ID: usize = 64;

/// A message body: not blank, at most [`MAX_BODY_CHARS`] characters, stored exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("body is empty".into());
        }
        let chars = s.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(format!(
                "body is {chars} characters long; the limit is {MAX_BODY_CHARS}"
            ));
        }
        if s.contains('\0') {
            return Err("body contains a NUL character".into());
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The sender's idempotency key: 1 to 64 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub fn parse(s: String) -> Result<Self, String> {
        let n = s.chars().count();
        if n == 0 || n > MAX_CLIENT_MSG_ID {
            return Err(format!(
                "client_msg_id must be 1 to {MAX_CLIENT_MSG_ID} characters, got {n}"
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("client_msg_id contains control characters".into());
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for ClientMsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_rules() {
        assert!(MessageBody::parse("hi".into()).is_ok());
        assert!(MessageBody::parse("   \n".into()).is_err());
        assert!(MessageBody::parse("a".repeat(MAX_BODY_CHARS)).is_ok());
        let err = MessageBody::parse("字".repeat(MAX_BODY_CHARS + 1)).unwrap_err();
        assert!(err.contains("4001"), "{err}");
        // Kept exactly as sent, markup included.
        let xss = "<img src=x onerror=alert(1)>";
        assert_eq!(MessageBody::parse(xss.into()).unwrap().as_str(), xss);
    }

    #[test]
    fn client_msg_id_rules() {
        assert!(ClientMsgId::parse("c-1".into()).is_ok());
        assert!(ClientMsgId::parse(String::new()).is_err());
        assert!(ClientMsgId::parse("x".repeat(65)).is_err());
        assert!(ClientMsgId::parse("x".repeat(64)).is_ok());
        assert!(ClientMsgId::parse("a\nb".into()).is_err());
    }
}
