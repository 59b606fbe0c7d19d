//! One connection to one broker, with the API versions it serves (ApiVersions on first use): every
//! request goes at the highest version both this client's `kafka-protocol` and the broker know.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::ClientError;
use crate::controller::connection::{decode_response, encode_request_as, FramedConnection};
use crate::network::PeerSecurity;

/// Fetch responses are bounded by `fetch.max.bytes` (50 MiB by default) plus framing.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// The ApiVersions version sent first; a broker that does not know it answers with its ranges in a v0
/// response, and the request is repeated at v0.
const API_VERSIONS_VERSION: i16 = 3;

pub struct BrokerConnection {
    connection: FramedConnection,
    client_id: String,
    timeout: Duration,
    correlation_id: i32,
    /// The broker's (min, max) version per API key, once asked.
    versions: Option<BTreeMap<i16, (i16, i16)>>,
}

impl BrokerConnection {
    pub fn new(
        address: &str,
        security: PeerSecurity,
        client_id: &str,
        timeout: Duration,
    ) -> BrokerConnection {
        BrokerConnection {
            connection: FramedConnection::new(address.to_string(), MAX_RESPONSE, security),
            client_id: client_id.to_string(),
            timeout,
            correlation_id: 0,
            versions: None,
        }
    }

    pub fn address(&self) -> &str {
        self.connection.address()
    }

    /// Connects (if not yet) and learns the broker's API versions.
    pub async fn ensure_ready(&mut self) -> Result<(), ClientError> {
        if self.versions.is_some() {
            return Ok(());
        }
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kavka"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse =
            self.send_at(&request, API_VERSIONS_VERSION).await?;
        if response.error_code == 35 {
            response = self.send_at(&request, 0).await?;
        }
        if response.error_code != 0 {
            return Err(ClientError::kafka(
                format!("ApiVersions to {}", self.address()),
                response.error_code,
                None,
            ));
        }
        self.versions = Some(
            response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        );
        Ok(())
    }

    /// The version `R` is sent at: the highest both sides know.
    pub async fn version_for<R: Request>(&mut self) -> Result<i16, ClientError> {
        self.ensure_ready().await?;
        let ours = R::VERSIONS;
        let theirs = self.versions.as_ref().and_then(|v| v.get(&R::KEY).copied());
        match theirs {
            Some((min, max)) if min <= ours.max && max >= ours.min => Ok(max.min(ours.max)),
            _ => Err(ClientError::Unsupported {
                address: self.address().to_string(),
                api: api_name(R::KEY),
                ours: format!("{}..{}", ours.min, ours.max),
            }),
        }
    }

    /// Whether the broker serves `R` at all.
    pub async fn supports<R: Request>(&mut self) -> Result<bool, ClientError> {
        match self.version_for::<R>().await {
            Ok(_) => Ok(true),
            Err(ClientError::Unsupported { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends `request` at the negotiated version and returns the response.
    pub async fn send<R>(&mut self, request: &R) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let version = self.version_for::<R>().await?;
        self.send_at(request, version).await
    }

    /// Writes `request` at `version` without waiting for a response (Produce with acks=0).
    pub async fn send_oneway<R>(&mut self, request: &R, version: i16) -> Result<(), ClientError>
    where
        R: Request + Encodable + HeaderVersion,
    {
        self.ensure_ready().await?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let body = encode_request_as(request, version, self.correlation_id, &self.client_id)
            .map_err(|e| {
                ClientError::Protocol(format!("cannot encode {}: {e}", api_name(R::KEY)))
            })?;
        self.connection
            .send_only(&body, self.timeout)
            .await
            .map_err(|source| ClientError::Io {
                address: self.address().to_string(),
                source,
            })
    }

    /// Sends `request` at `version` (for requests whose fields depend on the version chosen).
    pub async fn send_at<R>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let body =
            encode_request_as(request, version, correlation_id, &self.client_id).map_err(|e| {
                ClientError::Protocol(format!("cannot encode {}: {e}", api_name(R::KEY)))
            })?;
        let response = self
            .connection
            .exchange(&body, self.timeout)
            .await
            .map_err(|source| ClientError::Io {
                address: self.address().to_string(),
                source,
            })?;
        decode_response::<R>(response, version, correlation_id).map_err(|e| {
            self.connection.reset();
            ClientError::Protocol(format!(
                "{} response from {}: {e}",
                api_name(R::KEY),
                self.address()
            ))
        })
    }
}

/// Kafka's name of an API key (`CreateTopics`).
pub fn api_name(key: i16) -> String {
    kafka_protocol::messages::ApiKey::try_from(key)
        .map(|k| format!("{k:?}").trim_end_matches("Key").to_string())
        .unwrap_or_else(|_| format!("API {key}"))
}
