//! `kavka storage format`: preparing a node's log directories before its first start, as Kafka's
//! `kafka-storage format` does, and the initial voters of a dynamic metadata quorum (KIP-853).
//!
//! A node configured with `controller.quorum.voters` (a static quorum), or with neither quorum key (a
//! single node), formats its directories itself at first start. A node of a dynamic quorum
//! (`controller.quorum.bootstrap.servers`) must be formatted first, as in Kafka: whether a controller
//! starts a new quorum (`--standalone`, `--initial-controllers`) or joins one (`--no-initial-controllers`)
//! cannot be guessed safely, since two controllers that both guessed "start" would make two clusters.
//! The initial voters are kept in [`INITIAL_VOTERS_FILE`] inside the metadata log's directory, where
//! Kafka writes its bootstrap checkpoint; the quorum reads it once, to initialize a pristine log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kavka_config::BrokerConfig;

use crate::controller::quorum::METADATA_DIR;
use crate::controller::raft::ControllerNode;
use crate::meta_properties::new_cluster_id;

/// The initial voters of a dynamic quorum (`id@host:port` per line), in the metadata log's directory.
pub const INITIAL_VOTERS_FILE: &str = "initial-voters";

/// How a controller of a dynamic quorum begins (the format flags of Kafka's storage tool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialControllers {
    /// `--standalone`: this controller alone is the first voter; others join later.
    Standalone,
    /// `--initial-controllers`: these voters, the same list on each of them.
    Listed(BTreeMap<u64, ControllerNode>),
    /// `--no-initial-controllers`: this controller joins a quorum that already runs.
    None,
}

/// What `kavka storage format` was asked to do.
#[derive(Debug, Clone)]
pub struct FormatRequest {
    pub cluster_id: String,
    /// None when no quorum flag was given.
    pub initial_controllers: Option<InitialControllers>,
    /// `--ignore-formatted`: skip directories that are already formatted instead of failing.
    pub ignore_formatted: bool,
    /// `--add-scram`: SCRAM users that exist from the cluster's first start.
    pub scram: Vec<crate::security::scram_bootstrap::BootstrapScram>,
}

/// Why formatting was refused; nothing was written for the directory named, nor after it.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cluster id {0:?} is not valid: expected 22 characters of URL-safe base64, as `kavka storage random-uuid` prints")]
    InvalidClusterId(String),
    #[error("--standalone, --initial-controllers and --no-initial-controllers set up a dynamic quorum, but this configuration sets controller.quorum.voters (a static quorum); remove the flag or the key")]
    FlagWithStaticVoters,
    #[error("because controller.quorum.voters is not set on this controller, one of --standalone, --initial-controllers or --no-initial-controllers is needed")]
    QuorumFlagNeeded,
    #[error(
        "only a controller can be an initial voter, but process.roles does not include controller"
    )]
    NotAController,
    #[error("node.id {0} is not in --initial-controllers; a controller that joins later is formatted with --no-initial-controllers")]
    NotAnInitialController(i32),
    #[error("--initial-controllers: {0}")]
    InvalidInitialControllers(String),
    #[error("this controller's address for the other nodes: {0}")]
    ControllerEndpoint(String),
    #[error("log directory {0} is already formatted; use --ignore-formatted to ignore this directory and format the others")]
    AlreadyFormatted(String),
    #[error("log.dirs is empty")]
    NoLogDirs,
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Parses `--initial-controllers`: `id@host:port[:directory-id]`, comma-separated. Kavka keeps no
/// directory ids, so one given (as Kafka's tool wants it) is checked for shape and then not used.
pub fn parse_initial_controllers(list: &str) -> Result<BTreeMap<u64, ControllerNode>, FormatError> {
    let invalid = FormatError::InvalidInitialControllers;
    let mut voters = BTreeMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let voter = match kavka_config::parse_voter(entry) {
            Ok(voter) => voter,
            Err(first_error) => {
                let (address, directory_id) = entry
                    .rsplit_once(':')
                    .ok_or_else(|| invalid(first_error.clone()))?;
                if !is_base64_uuid(directory_id) {
                    return Err(invalid(first_error));
                }
                kavka_config::parse_voter(address).map_err(invalid)?
            }
        };
        let id = voter.id as u64;
        let node = ControllerNode {
            host: voter.host,
            port: voter.port,
        };
        if voters.insert(id, node).is_some() {
            return Err(invalid(format!("node id {id} appears twice")));
        }
    }
    if voters.is_empty() {
        return Err(invalid("no controller listed".into()));
    }
    Ok(voters)
}

/// Kafka's UUID text form: 22 characters of URL-safe base64 without padding.
fn is_base64_uuid(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether this configuration describes a dynamic quorum: bootstrap servers and no static voters.
pub fn is_dynamic_quorum(config: &BrokerConfig) -> bool {
    config.controller_quorum_voters.is_empty()
        && !config.controller_quorum_bootstrap_servers.is_empty()
}

/// The address other nodes reach this controller at: its first controller listener. A listener bound to
/// every interface names no such address, so a dynamic quorum needs a host there.
pub fn controller_endpoint(config: &BrokerConfig) -> Result<ControllerNode, String> {
    let listener = config
        .controller_listeners()
        .into_iter()
        .next()
        .ok_or_else(|| "no listener is named in controller.listener.names".to_string())?;
    if listener.host.is_empty() || listener.host == "0.0.0.0" || listener.host == "::" {
        return Err(format!(
            "the controller listener {} has no host that other nodes can reach ({:?}); give it one in listeners",
            listener.name, listener.host
        ));
    }
    if listener.port == 0 {
        return Err(format!(
            "the controller listener {} has port 0; a voter needs a fixed port",
            listener.name
        ));
    }
    Ok(ControllerNode {
        host: listener.host.clone(),
        port: listener.port,
    })
}

/// Formats the log directories of `config` and returns the directories written: none when every one was
/// formatted already and `ignore_formatted` is set (Kafka's tool then succeeds too, so start scripts can
/// run it before every start).
pub fn format(config: &BrokerConfig, request: &FormatRequest) -> Result<Vec<PathBuf>, FormatError> {
    if !is_base64_uuid(&request.cluster_id) {
        return Err(FormatError::InvalidClusterId(request.cluster_id.clone()));
    }
    let initial_voters = initial_voters(config, request)?;
    let dirs: Vec<PathBuf> = config.log_dirs.iter().map(PathBuf::from).collect();
    let first_dir = dirs.first().cloned().ok_or(FormatError::NoLogDirs)?;
    let mut pending = Vec::new();
    for dir in &dirs {
        if dir.join("meta.properties").exists() {
            if request.ignore_formatted {
                continue;
            }
            return Err(FormatError::AlreadyFormatted(dir.display().to_string()));
        }
        pending.push(dir.clone());
    }
    for dir in &pending {
        if *dir == first_dir {
            if let Some(voters) = &initial_voters {
                write_initial_voters(dir, voters)?;
            }
            if !request.scram.is_empty() {
                use crate::security::scram_bootstrap::{file_text, BOOTSTRAP_SCRAM_FILE};
                write_file(
                    &dir.join(METADATA_DIR).join(BOOTSTRAP_SCRAM_FILE),
                    &file_text(&request.scram),
                )?;
            }
        }
        // Written last: a directory with meta.properties counts as formatted.
        write_file(
            &dir.join("meta.properties"),
            &format!(
                "version=1\ncluster.id={}\nnode.id={}\ndirectory.id={}\n",
                request.cluster_id,
                config.node_id,
                new_cluster_id()
            ),
        )?;
    }
    Ok(pending)
}

/// The voters this node writes as the quorum's first, after checking the flags against the roles and
/// quorum keys as Kafka's storage tool does.
fn initial_voters(
    config: &BrokerConfig,
    request: &FormatRequest,
) -> Result<Option<BTreeMap<u64, ControllerNode>>, FormatError> {
    let Some(flag) = &request.initial_controllers else {
        if config.is_controller() && is_dynamic_quorum(config) {
            return Err(FormatError::QuorumFlagNeeded);
        }
        return Ok(None);
    };
    if !config.controller_quorum_voters.is_empty() {
        return Err(FormatError::FlagWithStaticVoters);
    }
    match flag {
        InitialControllers::None => Ok(None),
        _ if !config.is_controller() => Err(FormatError::NotAController),
        InitialControllers::Standalone => {
            let endpoint = controller_endpoint(config).map_err(FormatError::ControllerEndpoint)?;
            Ok(Some(BTreeMap::from([(config.node_id as u64, endpoint)])))
        }
        InitialControllers::Listed(voters) => {
            if !voters.contains_key(&(config.node_id as u64)) {
                return Err(FormatError::NotAnInitialController(config.node_id));
            }
            Ok(Some(voters.clone()))
        }
    }
}

fn write_initial_voters(
    log_dir: &Path,
    voters: &BTreeMap<u64, ControllerNode>,
) -> Result<(), FormatError> {
    let dir = log_dir.join(METADATA_DIR);
    std::fs::create_dir_all(&dir).map_err(|source| FormatError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let text: String = voters
        .iter()
        .map(|(id, node)| format!("{id}@{node}\n"))
        .collect();
    write_file(&dir.join(INITIAL_VOTERS_FILE), &text)
}

/// Writes `text` to `path` through a temporary file and a rename, so a crash leaves no half file.
fn write_file(path: &Path, text: &str) -> Result<(), FormatError> {
    let io = |source| FormatError::Io {
        path: path.display().to_string(),
        source,
    };
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The initial voters `kavka storage format` wrote into `log_dir`'s metadata directory, if any.
pub fn read_initial_voters(
    log_dir: &Path,
) -> Result<Option<BTreeMap<u64, ControllerNode>>, String> {
    let path = log_dir.join(METADATA_DIR).join(INITIAL_VOTERS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_initial_controllers(&text.lines().collect::<Vec<_>>().join(","))
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)], dir: &Path) -> BrokerConfig {
        let mut all: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("log.dirs".into(), dir.display().to_string()));
        BrokerConfig::from_pairs(&all).expect("valid config").config
    }

    const CONTROLLER: &[(&str, &str)] = &[
        ("process.roles", "controller"),
        ("node.id", "1"),
        ("listeners", "CONTROLLER://127.0.0.1:19093"),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.bootstrap.servers", "127.0.0.1:19093"),
    ];
    const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qk";

    fn request(initial_controllers: Option<InitialControllers>) -> FormatRequest {
        FormatRequest {
            cluster_id: CLUSTER.into(),
            initial_controllers,
            ignore_formatted: false,
            scram: Vec::new(),
        }
    }

    #[test]
    fn standalone_controller_writes_itself_as_the_only_initial_voter() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(CONTROLLER, dir.path());
        let written = format(&config, &request(Some(InitialControllers::Standalone))).unwrap();
        assert_eq!(written, vec![dir.path().to_path_buf()]);
        let meta = std::fs::read_to_string(dir.path().join("meta.properties")).unwrap();
        assert!(
            meta.contains(&format!("cluster.id={CLUSTER}\nnode.id=1\n")),
            "{meta}"
        );
        assert!(meta.contains("directory.id="), "{meta}");
        let voters = read_initial_voters(dir.path()).unwrap().unwrap();
        assert_eq!(
            voters,
            BTreeMap::from([(
                1,
                ControllerNode {
                    host: "127.0.0.1".into(),
                    port: 19093
                }
            )])
        );
        // A second format is refused unless told to skip formatted directories.
        let again = format(&config, &request(Some(InitialControllers::Standalone)));
        assert!(
            matches!(again, Err(FormatError::AlreadyFormatted(_))),
            "{again:?}"
        );
        let mut ignoring = request(Some(InitialControllers::Standalone));
        ignoring.ignore_formatted = true;
        assert_eq!(format(&config, &ignoring).unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn flags_are_checked_against_roles_and_quorum_keys() {
        let dir = tempfile::tempdir().unwrap();
        let controller = config(CONTROLLER, dir.path());
        assert!(matches!(
            format(&controller, &request(None)),
            Err(FormatError::QuorumFlagNeeded)
        ));
        let mut static_pairs = CONTROLLER.to_vec();
        static_pairs.push(("controller.quorum.voters", "1@127.0.0.1:19093"));
        let static_quorum = config(&static_pairs, dir.path());
        assert!(matches!(
            format(&static_quorum, &request(Some(InitialControllers::None))),
            Err(FormatError::FlagWithStaticVoters)
        ));
        let broker = config(
            &[
                ("process.roles", "broker"),
                ("node.id", "4"),
                ("listeners", "PLAINTEXT://127.0.0.1:19092"),
                ("controller.listener.names", "CONTROLLER"),
                ("controller.quorum.bootstrap.servers", "127.0.0.1:19093"),
            ],
            dir.path(),
        );
        assert!(matches!(
            format(&broker, &request(Some(InitialControllers::Standalone))),
            Err(FormatError::NotAController)
        ));
        let others = parse_initial_controllers("2@127.0.0.1:1,3@127.0.0.1:2").unwrap();
        assert!(matches!(
            format(
                &controller,
                &request(Some(InitialControllers::Listed(others)))
            ),
            Err(FormatError::NotAnInitialController(1))
        ));
        let bad_id = FormatRequest {
            cluster_id: "not a cluster id".into(),
            ..request(Some(InitialControllers::Standalone))
        };
        assert!(matches!(
            format(&controller, &bad_id),
            Err(FormatError::InvalidClusterId(_))
        ));
        // Nothing was written by the refused attempts; a broker formats without a flag.
        assert!(!dir.path().join("meta.properties").exists());
        format(&broker, &request(None)).unwrap();
        assert!(read_initial_voters(dir.path()).unwrap().is_none());
    }

    #[test]
    fn initial_controllers_accept_kafkas_directory_ids() {
        let voters = parse_initial_controllers(
            "0@controller-0:1234:3Db5QLSqSZieL3rJBUUegA,1@controller-1:1234",
        )
        .unwrap();
        assert_eq!(voters.len(), 2);
        assert_eq!(voters[&0].host, "controller-0");
        assert_eq!(voters[&1].port, 1234);
        for bad in ["", "0@h:1,0@h:2", "x@h:1", "0@h:1:notanid", "0@h"] {
            assert!(parse_initial_controllers(bad).is_err(), "{bad:?}");
        }
    }
}
