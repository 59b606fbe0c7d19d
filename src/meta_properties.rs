//! `meta.properties`, the file that ties a log directory to one cluster and one node (Kafka's format, what
//! `kafka-storage format` writes): read by the broker at start-up, written by it for a new directory and
//! by `kavka cluster up` for every node of a local cluster.

/// The two keys of `meta.properties` that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// `cluster.id`.
    pub cluster_id: String,
    /// `node.id`, when present and an integer.
    pub node_id: Option<i32>,
}

/// Parses `meta.properties`: `cluster.id` is required; a key given twice takes its last value, as in a
/// Java properties file.
pub fn parse_meta_properties(text: &str) -> Result<MetaProperties, String> {
    let pairs = kavka_config::parse_properties(text).map_err(|e| e.to_string())?;
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let cluster_id = get("cluster.id")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "no cluster.id".to_string())?;
    Ok(MetaProperties {
        cluster_id,
        node_id: get("node.id").and_then(|v| v.parse().ok()),
    })
}

/// `meta.properties` as a new log directory gets it.
pub fn render_meta_properties(cluster_id: &str, node_id: i32) -> String {
    format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n")
}

/// Kafka cluster ids are a random UUID in URL-safe base64 without padding (22 characters).
/// Like Kafka's `Uuid.randomUuid`, never one starting with `-`: command lines would read it
/// as an option (`kavka storage format --cluster-id -x...`).
pub fn new_cluster_id() -> String {
    use base64::Engine;
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_never_look_like_options() {
        // One id in 64 would start with '-' without the check.
        for _ in 0..2000 {
            let id = new_cluster_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'), "{id}");
        }
    }

    #[test]
    fn meta_properties_round_trip_in_the_brokers_format() {
        let text = render_meta_properties("abcDEF_-123", 4);
        assert_eq!(text, "version=1\ncluster.id=abcDEF_-123\nnode.id=4\n");
        let meta = parse_meta_properties(&text).unwrap();
        assert_eq!(meta.cluster_id, "abcDEF_-123");
        assert_eq!(meta.node_id, Some(4));
        assert!(parse_meta_properties("version=1\nnode.id=1\n").is_err());
        assert_eq!(
            parse_meta_properties("cluster.id=x\n").unwrap().node_id,
            None
        );
    }
}
