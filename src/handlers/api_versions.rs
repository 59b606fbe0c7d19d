//! ApiVersions (key 18): the versions of every API this broker serves.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::dispatch::{advertised_api_versions, RequestContext};
use crate::server::Broker;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let response =
        ApiVersionsResponse::default().with_api_keys(advertised_api_versions(&broker.config));
    if ctx.api_version >= 3
        && !(valid_software_field(&request.client_software_name)
            && valid_software_field(&request.client_software_version))
    {
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    response
}

/// KIP-511 response to a version this broker does not know: v0 layout, UNSUPPORTED_VERSION, and the
/// supported ranges so the client can retry with one of them.
pub fn unsupported_version_response(broker: &Broker) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(advertised_api_versions(&broker.config))
}

/// Kafka's rule for client software name/version: `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_software_field(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::valid_software_field;

    #[test]
    fn software_field_rules() {
        assert!(valid_software_field("librdkafka"));
        assert!(valid_software_field("2.12.1"));
        assert!(valid_software_field("apache-kafka-java"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-x"));
        assert!(!valid_software_field("a b"));
    }
}
