//! AlterUserScramCredentials (key 51): sets or deletes users' SCRAM-SHA-256/512 credentials in the
//! metadata log. The client salts the password itself, so the password never reaches the cluster.
//! Decided by the active controller (brokers forward the request there); needs ALTER on the cluster.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::metadata::{ScramChange, ScramUserResult};
use crate::security::acl::AclOperation;
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let changes: Vec<ScramChange> = request
        .deletions
        .iter()
        .map(|d| ScramChange::Delete {
            user: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .chain(request.upsertions.iter().map(|u| ScramChange::Upsert {
            user: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        }))
        .collect();
    let every_user_fails = |code: i16, message: String| {
        let mut users: Vec<String> = Vec::new();
        for change in &changes {
            let user = match change {
                ScramChange::Delete { user, .. } | ScramChange::Upsert { user, .. } => user,
            };
            if !users.contains(user) {
                users.push(user.clone());
            }
        }
        users
            .into_iter()
            .map(|user| ScramUserResult {
                user,
                error: Some((code, message.clone())),
            })
            .collect()
    };
    let results = if !Authz::new(broker, ctx).allows_cluster(AclOperation::Alter) {
        every_user_fails(
            ResponseError::ClusterAuthorizationFailed.code(),
            "Cluster authorization failed.".into(),
        )
    } else {
        let submitted = changes.clone();
        match broker
            .with_controller(move |c| c.alter_user_scram_credentials(submitted))
            .await
        {
            Ok(results) => results,
            Err(e) => every_user_fails(e.code(), e.to_string()),
        }
    };
    AlterUserScramCredentialsResponse::default().with_results(
        results
            .into_iter()
            .map(|r| {
                let (code, message) = r.error.unwrap_or((0, String::new()));
                AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(r.user))
                    .with_error_code(code)
                    .with_error_message((code != 0).then(|| str_bytes(message)))
            })
            .collect(),
    )
}
