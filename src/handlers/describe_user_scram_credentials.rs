//! DescribeUserScramCredentials (key 50): which SCRAM mechanisms (and iteration counts) each user has,
//! from this node's metadata image; never the salts or keys. Needs DESCRIBE on the cluster.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::security::acl::AclOperation;
use crate::security::authz::Authz;
use crate::server::Broker;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !Authz::new(broker, ctx).allows_cluster(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")));
    }
    let image = broker.controller.image();
    let describe = |user: &str| -> DescribeUserScramCredentialsResult {
        let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
        match image.scram_credentials.get(user) {
            Some(credentials) => result.with_credential_infos(
                credentials
                    .iter()
                    .map(|(mechanism, credential)| {
                        CredentialInfo::default()
                            .with_mechanism(mechanism.kafka_type())
                            .with_iterations(credential.iterations)
                    })
                    .collect(),
            ),
            None => result
                .with_error_code(ResponseError::ResourceNotFound.code())
                .with_error_message(Some(str_bytes(format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                )))),
        }
    };
    let results = match request.users.as_deref() {
        // Null or empty: every user with a credential.
        None | Some([]) => image
            .scram_credentials
            .keys()
            .map(|user| describe(user))
            .collect(),
        Some(users) => {
            let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
            let mut seen: Vec<&str> = Vec::new();
            let mut results = Vec::new();
            for name in &names {
                if seen.contains(name) {
                    continue;
                }
                seen.push(name);
                if names.iter().filter(|n| *n == name).count() > 1 {
                    results.push(
                        DescribeUserScramCredentialsResult::default()
                            .with_user(str_bytes(*name))
                            .with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                            )))),
                    );
                } else {
                    results.push(describe(name));
                }
            }
            results
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
