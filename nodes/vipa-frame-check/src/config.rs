//! Configuration of the frame-check sink (YAML in `VIPA_CONFIG`, see `vipa_node_kit::config`).
//!
//! ```yaml
//! summary_path: out/frame-check/summary.json  # where the JSON summary goes (folders created)
//! expect_width: null      # if set, frames of another width count as bad messages
//! expect_height: null
//! expect_encoding: null   # rgb8 | bgr8 | mono8
//! process_delay_ms: 0     # sleep this long per frame: simulates a slow consumer (tests)
//! ```
//! A relative `summary_path` is resolved against the node's working directory (the dataflow
//! YAML's folder under `dora run`).

use std::path::PathBuf;

use serde::Deserialize;
use vipa_msgs::Encoding;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrameCheckConfig {
    pub summary_path: PathBuf,
    pub expect_width: Option<u32>,
    pub expect_height: Option<u32>,
    pub expect_encoding: Option<String>,
    pub process_delay_ms: u64,
}

impl Default for FrameCheckConfig {
    fn default() -> Self {
        Self {
            summary_path: PathBuf::from("out/frame-check/summary.json"),
            expect_width: None,
            expect_height: None,
            expect_encoding: None,
            process_delay_ms: 0,
        }
    }
}

impl FrameCheckConfig {
    pub fn encoding(&self) -> Option<Encoding> {
        self.expect_encoding.as_deref().and_then(Encoding::parse)
    }
}

impl vipa_node_kit::NodeConfig for FrameCheckConfig {
    fn validate(&self) -> Result<(), String> {
        if self.summary_path.as_os_str().is_empty() {
            return Err("`summary_path` is empty; give a file path for the JSON summary".into());
        }
        if let Some(e) = &self.expect_encoding
            && Encoding::parse(e).is_none()
        {
            return Err(format!(
                "`expect_encoding` must be rgb8, bgr8 or mono8, got {e:?}"
            ));
        }
        if self.process_delay_ms > 10_000 {
            return Err(format!(
                "`process_delay_ms` must be <= 10000, got {}",
                self.process_delay_ms
            ));
        }
        if self.expect_width == Some(0) || self.expect_height == Some(0) {
            return Err("`expect_width`/`expect_height` must be >= 1 (or null)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_node_kit::from_yaml_str;

    #[test]
    fn defaults_and_overrides() {
        let c: FrameCheckConfig = from_yaml_str("").unwrap();
        assert_eq!(
            c.summary_path,
            PathBuf::from("out/frame-check/summary.json")
        );
        let c: FrameCheckConfig =
            from_yaml_str("summary_path: /tmp/s.json\nexpect_width: 64\nexpect_encoding: bgr8")
                .unwrap();
        assert_eq!(c.expect_width, Some(64));
        assert_eq!(c.encoding(), Some(Encoding::Bgr8));
    }

    #[test]
    fn bad_values_are_rejected() {
        for (yaml, key) in [
            ("expect_encoding: yuv", "expect_encoding"),
            ("expect_width: 0", "expect_width"),
            ("summary_path: ''", "summary_path"),
            ("sumary_path: x", "summary_path"),
        ] {
            let err = from_yaml_str::<FrameCheckConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }
}
