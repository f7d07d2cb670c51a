//! Configuration of the semantic (2D) encoder node (YAML in `VIPA_CONFIG`).
//!
//! ```yaml
//! preset: tiny          # tiny | small | internvl3_5_2b (vipa_models::Preset)
//! weights: null         # a safetensors file or a list (e.g. the InternVL3.5-2B shards, keys
//!                       # `vision_model.*`, `mlp1.*`, or the `-HF` ones in transformers'
//!                       # naming); null = seeded random init (see below)
//! seed: 0               # the random init's seed (only without `weights`)
//! device: auto          # auto | cpu | cuda (vipa_models::device: auto = GPU 0 in a
//!                       # `--features cuda` build when one answers, else the CPU)
//! features: vit_tokens  # vit_tokens: ViT patch tokens before pixel shuffle (fusion placed
//!                       # `before_projector`, the default); projected: after `mlp1`
//! exit_grace_ms: 10000  # after the end of stream: wait this long for dora to stop us
//! cache: null           # a folder: keep every output on disk, keyed by the frame's pixels
//!                       # and this config + weights (vipa_node_kit::cache); later epochs and
//!                       # runs read it instead of encoding. null = no cache
//! ```
//!
//! Without `weights` the encoder is a **deterministic random-init** InternViT of the preset's
//! shape: the same seed gives the same features in every run and on every machine. That is the
//! CPU presets' situation (`tiny`, `small`: no pretrained checkpoint of that size exists); the
//! full `internvl3_5_2b` preset is meant to run with the upstream weights.

use serde::Deserialize;
use vipa_models::Preset;
use vipa_models::device::DeviceChoice;

pub use vipa_node_kit::Paths;

/// Which semantic features the node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Features {
    /// `f32[gh·gw, d_vit]`: the fusion input with placement `before_projector`.
    VitTokens,
    /// `f32[gh·gw/k², d_llm]`: after pixel shuffle and `mlp1` (`after_projector`).
    Projected,
}

/// The encoder's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Encoder2dConfig {
    pub preset: Preset,
    pub weights: Option<Paths>,
    pub seed: u64,
    pub device: DeviceChoice,
    pub features: Features,
    pub exit_grace_ms: u64,
    pub cache: Option<std::path::PathBuf>,
}

impl Default for Encoder2dConfig {
    fn default() -> Self {
        Self {
            preset: Preset::Tiny,
            weights: None,
            seed: 0,
            device: DeviceChoice::Auto,
            features: Features::VitTokens,
            exit_grace_ms: 10_000,
            cache: None,
        }
    }
}

impl Encoder2dConfig {
    /// Everything that decides this encoder's output, for the feature cache's key (the
    /// weights by path, length and modification time).
    pub fn fingerprint(&self) -> std::io::Result<String> {
        let files = self.weights.as_ref().map(Paths::to_vec);
        let weights = vipa_node_kit::cache::weights_identity(files.as_deref(), self.seed)?;
        Ok(format!(
            "encoder-2d (InternViT) preset {} features {:?} weights [{weights}]",
            self.preset, self.features
        ))
    }
}

impl vipa_node_kit::NodeConfig for Encoder2dConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(w) = &self.weights
            && w.to_vec().is_empty()
        {
            return Err("`weights` is an empty list; give files or null".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_node_kit::from_yaml_str;

    #[test]
    fn one_or_many_weight_files() {
        let c: Encoder2dConfig = from_yaml_str("weights: a.safetensors").unwrap();
        assert_eq!(
            c.weights.unwrap().to_vec(),
            vec![std::path::PathBuf::from("a.safetensors")]
        );
        let c: Encoder2dConfig = from_yaml_str("{weights: [a, b], features: projected}").unwrap();
        assert_eq!(c.weights.unwrap().to_vec().len(), 2);
        assert_eq!(c.features, Features::Projected);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (yaml, key) in [
            ("preset: huge", "preset"),
            ("device: tpu", "device"),
            ("weights: []", "weights"),
            ("features: pooled", "features"),
            ("sed: 1", "seed"),
        ] {
            let err = from_yaml_str::<Encoder2dConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }
}
