//! DeleteTopics (key 20): by name (v1-v5) or by name or id (v6+), honouring `delete.topic.enable`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::metadata::TopicRef;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let targets: Vec<TopicRef> = if ctx.api_version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match &t.name {
                Some(name) => TopicRef::Name(name.to_string()),
                None => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| TopicRef::Name(n.to_string()))
            .collect()
    };
    if !broker.config.delete_topic_enable {
        // Kafka rejects the whole request before looking anything up; v0-v2 clients know no
        // TOPIC_DELETION_DISABLED and get INVALID_REQUEST.
        let code = if ctx.api_version < 3 {
            ResponseError::InvalidRequest.code()
        } else {
            ResponseError::TopicDeletionDisabled.code()
        };
        let responses = targets
            .into_iter()
            .map(|target| {
                let mut result = DeletableTopicResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes("Topic deletion is disabled.")));
                match target {
                    TopicRef::Name(name) => result.name = Some(TopicName(str_bytes(name))),
                    TopicRef::Id(id) => result.topic_id = id,
                }
                result
            })
            .collect();
        return DeleteTopicsResponse::default().with_responses(responses);
    }
    let authz = Authz::new(broker, ctx);
    let mut responses = Vec::with_capacity(targets.len());
    for target in targets {
        let mut result = DeletableTopicResult::default();
        match &target {
            TopicRef::Name(name) => result.name = Some(TopicName(str_bytes(name.clone()))),
            TopicRef::Id(id) => result.topic_id = *id,
        }
        if let Some(error) = deletion_refused(broker, &authz, &target) {
            result.error_code = error.code();
            responses.push(result);
            continue;
        }
        let request_target = target.clone();
        match broker
            .with_controller(move |c| c.delete_topic(&request_target))
            .await
        {
            Ok((name, topic_id)) => {
                result.name = Some(TopicName(str_bytes(name)));
                result.topic_id = topic_id;
            }
            Err(e) => {
                result.error_code = e.code();
                result.error_message = Some(str_bytes(e.to_string()));
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Kafka's checks: DELETE on the topic. What a requester may not describe is refused the same way
/// whether it exists or not (its existence is not revealed); an unknown id stays UNKNOWN_TOPIC_ID,
/// since an id reveals no name.
fn deletion_refused(
    broker: &Broker,
    authz: &Authz<'_>,
    target: &TopicRef,
) -> Option<ResponseError> {
    let image = broker.image();
    let (name, exists) = match target {
        TopicRef::Name(name) => (name.as_str(), image.topic(name).is_some()),
        TopicRef::Id(id) => match image.topic_by_id(id) {
            Some(topic) => (topic.name.as_str(), true),
            None => return None,
        },
    };
    if authz.can_see(AclOperation::Delete, ResourceType::Topic, name) {
        return None;
    }
    let describable = authz.can_see(AclOperation::Describe, ResourceType::Topic, name);
    if !exists && describable {
        return Some(ResponseError::UnknownTopicOrPartition);
    }
    // Logged once, as the refusal it is.
    authz.allows(AclOperation::Delete, ResourceType::Topic, name);
    Some(ResponseError::TopicAuthorizationFailed)
}
