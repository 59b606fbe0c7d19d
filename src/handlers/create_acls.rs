//! CreateAcls (key 30): stores access control entries in the metadata log. Decided by the active
//! controller (brokers forward the request there); needs ALTER on the cluster.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::security::acl::{AclBinding, AclOperation};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let refusal = acl_api_refusal(broker, ctx, AclOperation::Alter);
    let parsed: Vec<Result<AclBinding, String>> = request
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_wire(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let stored = match refusal {
        Some(refused) => Err(refused),
        None if valid.is_empty() => Ok(Vec::new()),
        None => broker
            .with_controller(move |c| c.create_acls(valid))
            .await
            .map_err(|e| (e.code(), e.to_string())),
    };
    let mut stored_results = match &stored {
        Ok(results) => results.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = parsed
        .into_iter()
        .map(|p| {
            let (code, message) = match (&stored, p) {
                (Err((code, message)), _) => (*code, Some(message.clone())),
                (Ok(_), Err(invalid)) => (ResponseError::InvalidRequest.code(), Some(invalid)),
                (Ok(_), Ok(_)) => match stored_results.next() {
                    Some(Err(e)) => (ResponseError::InvalidRequest.code(), Some(e.to_string())),
                    _ => (0, None),
                },
            };
            AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(message.map(str_bytes))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// Why an ACL API is refused as a whole: no authorizer (SECURITY_DISABLED, as Kafka answers), or the
/// principal lacks `operation` on the cluster.
pub(super) fn acl_api_refusal(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    operation: AclOperation,
) -> Option<(i16, String)> {
    if !broker.authorizer.enabled {
        return Some((
            ResponseError::SecurityDisabled.code(),
            "No Authorizer is configured.".into(),
        ));
    }
    if !Authz::new(broker, ctx).allows_cluster(operation) {
        return Some((
            ResponseError::ClusterAuthorizationFailed.code(),
            "Cluster authorization failed.".into(),
        ));
    }
    None
}
