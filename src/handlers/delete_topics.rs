//! DeleteTopics (key 20): by name (v1-v5) or by name or id (v6+), honouring `delete.topic.enable`.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::metadata::TopicRef;
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
    let mut responses = Vec::with_capacity(targets.len());
    for target in targets {
        let mut result = DeletableTopicResult::default();
        match &target {
            TopicRef::Name(name) => result.name = Some(TopicName(str_bytes(name.clone()))),
            TopicRef::Id(id) => result.topic_id = *id,
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
