//! What can go wrong on the client side, each with a message an operator can act on.

use std::path::PathBuf;

use kafka_protocol::ResponseError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A property file or option that cannot be used.
    #[error("{0}")]
    Config(String),
    /// A property file that cannot be read or parsed.
    #[error("{}: {message}", path.display())]
    PropertyFile { path: PathBuf, message: String },
    /// No bootstrap server answered.
    #[error("cannot reach any bootstrap server ({0})")]
    Unreachable(String),
    /// A connection to a broker failed after bootstrap.
    #[error("{address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    /// The broker answered with something that does not parse or does not fit the request.
    #[error("{0}")]
    Protocol(String),
    /// The broker does not serve an API at any version this client speaks.
    #[error("the broker at {address} does not support {api} (versions {ours} are needed)")]
    Unsupported {
        address: String,
        api: String,
        ours: String,
    },
    /// A Kafka error code, with what was being done.
    #[error("{context}: {}", describe_code(*code, message.as_deref()))]
    Kafka {
        context: String,
        code: i16,
        message: Option<String>,
    },
    /// A condition the command checks itself ("topic 'x' already exists").
    #[error("{0}")]
    Failed(String),
}

impl ClientError {
    /// The Kafka error `code` (non-zero) with what was being done and the broker's message.
    pub fn kafka(context: impl Into<String>, code: i16, message: Option<&str>) -> ClientError {
        ClientError::Kafka {
            context: context.into(),
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }
    }

    /// The Kafka error code, if this is one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `Ok` for code 0, else a [`ClientError::Kafka`].
pub fn check(
    code: i16,
    message: Option<&str>,
    context: impl FnOnce() -> String,
) -> Result<(), ClientError> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::kafka(context(), code, message))
    }
}

/// Kafka's name of an error code (`TOPIC_ALREADY_EXISTS`), as its tools and logs print it.
pub fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            let debug = format!("{e:?}");
            let mut name = String::with_capacity(debug.len() + 8);
            for (i, ch) in debug.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(ch.to_ascii_uppercase());
            }
            name
        }
    }
}

/// The broker's message if it sent one, else Kafka's description of the code; then the code's name.
fn describe_code(code: i16, message: Option<&str>) -> String {
    let text = match (message, ResponseError::try_from_code(code)) {
        (Some(m), _) => m.to_string(),
        (None, Some(e)) => e.to_string(),
        (None, None) => String::new(),
    };
    format!("{} ({})", text.trim_end_matches('.'), code_name(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_kafkas() {
        assert_eq!(code_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(code_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(code_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(code_name(0), "NONE");
        assert_eq!(code_name(-1), "UNKNOWN_SERVER_ERROR");
    }

    #[test]
    fn kafka_errors_name_context_message_and_code() {
        let e = ClientError::kafka("creating topic 't'", 36, Some("Topic 't' already exists."));
        assert_eq!(
            e.to_string(),
            "creating topic 't': Topic 't' already exists (TOPIC_ALREADY_EXISTS)"
        );
        let e = ClientError::kafka("x", 29, None);
        assert!(e.to_string().contains("TOPIC_AUTHORIZATION_FAILED"), "{e}");
    }
}
