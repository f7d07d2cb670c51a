//! Node configuration: one YAML document per node, from the `VIPA_CONFIG` environment variable.
//!
//! # Where the YAML comes from
//! `VIPA_CONFIG` (set in the dataflow's `env:` block) is read by [`load_config`]:
//! - unset or empty → `C::default()`;
//! - a value that names an existing file → that file is read (relative paths are resolved
//!   against the node's working directory, which under `dora run` is the dataflow YAML's
//!   directory);
//! - anything else → the value itself is parsed as inline YAML (e.g. `"{fps: 10}"` or a
//!   multi-line block). A value that looks like a file path (ends in `.yml`/`.yaml`, one line)
//!   but names no file is reported as a missing file rather than parsed as YAML.
//!
//! Then [`NodeConfig::validate`] checks values that serde cannot (ranges, combinations).
//!
//! Configs use `#[serde(deny_unknown_fields)]`, so a typo is an error that lists the allowed
//! keys instead of a silently ignored setting.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// One path or a list of paths (`weights: a.safetensors` or `weights: [a, b]` in a config).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Paths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl Default for Paths {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl Paths {
    /// The paths, in order.
    pub fn to_vec(&self) -> Vec<PathBuf> {
        match self {
            Self::One(p) => vec![p.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// Environment variable that carries a node's configuration (a path or inline YAML).
pub const CONFIG_ENV: &str = "VIPA_CONFIG";

/// A node configuration: deserialisable from YAML, with defaults and a semantic check.
pub trait NodeConfig: DeserializeOwned + Default {
    /// Checks values serde cannot check. The message should name the key and the fix.
    fn validate(&self) -> Result<(), String>;
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}; fix the path in {CONFIG_ENV}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `VIPA_CONFIG` looks like a file path, but no such file exists.
    #[error(
        "config file {path} does not exist; {CONFIG_ENV} names a YAML file (relative to the node's working directory, the dataflow YAML's folder under `dora run`) or holds inline YAML"
    )]
    Missing { path: PathBuf },
    /// The YAML is malformed or does not match the config's schema.
    #[error("invalid config in {origin}: {message}")]
    Parse { origin: String, message: String },
    /// The YAML parsed, but a value is out of range or inconsistent.
    #[error("invalid config in {origin}: {message}")]
    Invalid { origin: String, message: String },
    /// `VIPA_CONFIG` is not valid unicode.
    #[error("{CONFIG_ENV} is not valid UTF-8")]
    NotUnicode,
}

/// Loads the node configuration from `VIPA_CONFIG` (see the module docs for the rule).
pub fn load_config<C: NodeConfig>() -> Result<C, ConfigError> {
    match std::env::var(CONFIG_ENV) {
        Err(std::env::VarError::NotPresent) => finish(C::default(), "defaults"),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode),
        Ok(value) => from_env_value(&value),
    }
}

/// Applies the `VIPA_CONFIG` rule to `value` (split out of [`load_config`] for tests).
pub fn from_env_value<C: NodeConfig>(value: &str) -> Result<C, ConfigError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return finish(C::default(), "defaults");
    }
    let path = Path::new(trimmed);
    if !trimmed.contains('\n') && path.is_file() {
        return from_path(path);
    }
    if looks_like_path(trimmed) {
        return Err(ConfigError::Missing {
            path: path.to_path_buf(),
        });
    }
    from_yaml_str_with_origin(value, &format!("inline YAML in {CONFIG_ENV}"))
}

/// Reads and validates a config file.
pub fn from_path<C: NodeConfig>(path: &Path) -> Result<C, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_yaml_str_with_origin(&text, &path.display().to_string())
}

/// Parses and validates inline YAML. An empty document gives the defaults.
pub fn from_yaml_str<C: NodeConfig>(yaml: &str) -> Result<C, ConfigError> {
    from_yaml_str_with_origin(yaml, "inline YAML")
}

fn from_yaml_str_with_origin<C: NodeConfig>(yaml: &str, origin: &str) -> Result<C, ConfigError> {
    // serde_yaml turns an empty document into `null`, which a struct rejects; an empty config
    // means "all defaults", like an unset variable.
    if yaml.trim().is_empty() {
        return finish(C::default(), origin);
    }
    let config = serde_yaml::from_str::<C>(yaml).map_err(|e| ConfigError::Parse {
        origin: origin.to_owned(),
        // serde_yaml's message includes the key path, the line and column, and for unknown
        // keys the list of expected ones.
        message: e.to_string(),
    })?;
    finish(config, origin)
}

fn finish<C: NodeConfig>(config: C, origin: &str) -> Result<C, ConfigError> {
    config.validate().map_err(|message| ConfigError::Invalid {
        origin: origin.to_owned(),
        message,
    })?;
    Ok(config)
}

/// One line, no YAML mapping syntax, and a YAML file extension: meant as a path.
fn looks_like_path(value: &str) -> bool {
    !value.contains('\n')
        && !value.contains(": ")
        && !value.starts_with('{')
        && (value.ends_with(".yml") || value.ends_with(".yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Demo {
        fps: f64,
        name: String,
    }

    impl Default for Demo {
        fn default() -> Self {
            Self {
                fps: 30.0,
                name: "demo".into(),
            }
        }
    }

    impl NodeConfig for Demo {
        fn validate(&self) -> Result<(), String> {
            if self.fps <= 0.0 {
                return Err(format!("`fps` must be > 0, got {}", self.fps));
            }
            Ok(())
        }
    }

    #[test]
    fn empty_yaml_gives_defaults() {
        let c: Demo = from_yaml_str("").unwrap();
        assert_eq!(c, Demo::default());
        let c: Demo = from_env_value("  ").unwrap();
        assert_eq!(c, Demo::default());
    }

    #[test]
    fn inline_yaml_overrides_some_keys() {
        let c: Demo = from_env_value("{fps: 5}").unwrap();
        assert_eq!(c.fps, 5.0);
        assert_eq!(c.name, "demo");
        let c: Demo = from_env_value("fps: 2.5\nname: x\n").unwrap();
        assert_eq!((c.fps, c.name.as_str()), (2.5, "x"));
    }

    #[test]
    fn unknown_key_lists_allowed_keys() {
        let err = from_yaml_str::<Demo>("fsp: 3").unwrap_err().to_string();
        assert!(err.contains("unknown field `fsp`"), "{err}");
        assert!(err.contains("fps") && err.contains("name"), "{err}");
        // serde_yaml reports no position for unknown keys (it does for wrong types, below);
        // the key name and the allowed list are enough to find it.
    }

    #[test]
    fn wrong_type_names_key_and_position() {
        let err = from_yaml_str::<Demo>("name: x\nfps: fast\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fps"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn validate_runs_after_parse() {
        let err = from_yaml_str::<Demo>("fps: -1").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("`fps` must be > 0"), "{err}");
    }

    #[test]
    fn value_naming_a_file_is_read_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yml");
        std::fs::write(&path, "fps: 7\n").unwrap();
        let c: Demo = from_env_value(path.to_str().unwrap()).unwrap();
        assert_eq!(c.fps, 7.0);
    }

    #[test]
    fn missing_yaml_file_is_reported_as_missing() {
        let err = from_env_value::<Demo>("/nonexistent/dir/ingest.yml").unwrap_err();
        assert!(matches!(err, ConfigError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/dir/ingest.yml"));
    }

    #[test]
    fn bad_yaml_in_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "fps: [1, 2\n").unwrap();
        let err = from_env_value::<Demo>(path.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.yaml"), "{err}");
    }
}
