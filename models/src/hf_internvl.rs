//! The transformers-native InternVL naming (`InternVLForConditionalGeneration`, the `…-hf`
//! checkpoints), mapped onto the upstream OpenGVLab naming the models are written in.
//!
//! | transformers (≥ 4.52; before: without the leading `model.`) | upstream |
//! |---|---|
//! | `model.vision_tower.embeddings.cls_token` | `vision_model.embeddings.class_embedding` |
//! | `….embeddings.patch_embeddings.projection.{weight,bias}` | `….embeddings.patch_embedding.…` |
//! | `….embeddings.position_embeddings` | `….embeddings.position_embedding` |
//! | `….encoder.layer.N.attention.{q,k,v}_proj.{weight,bias}` (three tensors) | `….encoder.layers.N.attn.qkv.…` (concatenated, q k v) |
//! | `….attention.projection_layer` / `….attention.{q,k}_norm` | `….attn.proj` / `….attn.{q,k}_norm` |
//! | `….layernorm_before` / `layernorm_after` / `lambda_1` / `lambda_2` / `mlp.fc{1,2}` | `….norm1` / `norm2` / `ls1` / `ls2` / `mlp.fc{1,2}` |
//! | `model.multi_modal_projector.{layer_norm,linear_1,linear_2}` | `mlp1.{0,1,3}` |
//! | `model.language_model.X`, `lm_head.weight` | `language_model.model.X`, `language_model.lm_head.weight` |
//!
//! (The older transformers layout, `language_model.model.X` and `language_model.lm_head`,
//! already is the upstream one.) [`aliases`] turns the names of a checkpoint into a table
//! upstream name → where its values are; `Checkpoint::open` applies it when the file is in
//! this naming, so every model loads both namings without knowing.

use std::collections::HashMap;

/// Where the values of an upstream-named tensor are in a transformers-named checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alias {
    /// One tensor under another name.
    Renamed(String),
    /// Several tensors concatenated along dimension 0 (split q / k / v → `qkv`).
    Concat(Vec<String>),
}

impl Alias {
    /// The names it reads.
    pub fn sources(&self) -> Vec<&str> {
        match self {
            Alias::Renamed(n) => vec![n.as_str()],
            Alias::Concat(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Whether `names` are in the transformers-native naming.
pub fn is_transformers_naming<S: AsRef<str>>(names: &[S]) -> bool {
    names.iter().any(|n| {
        let n = n.as_ref();
        ["vision_tower.", "multi_modal_projector.", "language_model."]
            .iter()
            .any(|p| n.strip_prefix("model.").unwrap_or(n).starts_with(p))
            && !n.starts_with("language_model.model.")
            && !n.starts_with("language_model.lm_head.")
    })
}

/// Renames inside one vision layer (`encoder.layer.N.` stripped off).
fn layer_part(rest: &str) -> Option<String> {
    const PARTS: [(&str, &str); 7] = [
        ("attention.projection_layer.", "attn.proj."),
        ("attention.q_norm.", "attn.q_norm."),
        ("attention.k_norm.", "attn.k_norm."),
        ("layernorm_before.", "norm1."),
        ("layernorm_after.", "norm2."),
        ("mlp.fc1.", "mlp.fc1."),
        ("mlp.fc2.", "mlp.fc2."),
    ];
    match rest {
        "lambda_1" => return Some("ls1".into()),
        "lambda_2" => return Some("ls2".into()),
        _ => {}
    }
    PARTS
        .iter()
        .find_map(|(hf, up)| rest.strip_prefix(hf).map(|tail| format!("{up}{tail}")))
}

/// The upstream name of one vision-tower tensor (`vision_tower.` stripped off), except the
/// split q/k/v, which [`aliases`] concatenates.
fn vision_name(rest: &str) -> Option<String> {
    let emb = match rest {
        "embeddings.cls_token" => Some("embeddings.class_embedding".to_owned()),
        "embeddings.position_embeddings" => Some("embeddings.position_embedding".to_owned()),
        _ => rest
            .strip_prefix("embeddings.patch_embeddings.projection.")
            .map(|t| format!("embeddings.patch_embedding.{t}")),
    };
    if let Some(e) = emb {
        return Some(format!("vision_model.{e}"));
    }
    let (layer, tail) = rest.strip_prefix("encoder.layer.")?.split_once('.')?;
    let part = layer_part(tail)?;
    Some(format!("vision_model.encoder.layers.{layer}.{part}"))
}

/// The alias table of a transformers-named checkpoint: upstream name → source. Names it does
/// not know (a vision tower's unused final `layernorm`, say) are left out, so asking for them
/// by their upstream name fails as any missing tensor does.
pub fn aliases<S: AsRef<str>>(names: &[S]) -> HashMap<String, Alias> {
    let mut out = HashMap::new();
    for n in names {
        let n = n.as_ref();
        let bare = n.strip_prefix("model.").unwrap_or(n);
        if let Some(rest) = bare.strip_prefix("vision_tower.") {
            // q/k/v: one alias per layer and suffix, from the q tensor's name.
            if let Some((head, tail)) = rest.split_once(".attention.q_proj.") {
                let src =
                    |x: &str| n.replace(".attention.q_proj.", &format!(".attention.{x}_proj."));
                if let Some(layer) = head.strip_prefix("encoder.layer.") {
                    out.insert(
                        format!("vision_model.encoder.layers.{layer}.attn.qkv.{tail}"),
                        Alias::Concat(vec![src("q"), src("k"), src("v")]),
                    );
                }
            } else if let Some(up) = vision_name(rest) {
                out.insert(up, Alias::Renamed(n.to_owned()));
            }
        } else if let Some(rest) = bare.strip_prefix("multi_modal_projector.") {
            let up = [
                ("layer_norm.", "0."),
                ("linear_1.", "1."),
                ("linear_2.", "3."),
            ]
            .iter()
            .find_map(|(hf, i)| rest.strip_prefix(hf).map(|t| format!("mlp1.{i}{t}")));
            if let Some(up) = up {
                out.insert(up, Alias::Renamed(n.to_owned()));
            }
        } else if let Some(rest) = n.strip_prefix("model.language_model.") {
            out.insert(
                format!("language_model.model.{rest}"),
                Alias::Renamed(n.to_owned()),
            );
        } else if let Some(rest) = n.strip_prefix("lm_head.") {
            out.insert(
                format!("language_model.lm_head.{rest}"),
                Alias::Renamed(n.to_owned()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_both_layouts_maps() {
        let names = [
            "model.vision_tower.embeddings.cls_token",
            "model.vision_tower.embeddings.patch_embeddings.projection.weight",
            "model.vision_tower.embeddings.position_embeddings",
            "model.vision_tower.encoder.layer.3.attention.q_proj.weight",
            "model.vision_tower.encoder.layer.3.attention.k_proj.weight",
            "model.vision_tower.encoder.layer.3.attention.v_proj.weight",
            "model.vision_tower.encoder.layer.3.attention.q_proj.bias",
            "model.vision_tower.encoder.layer.3.attention.projection_layer.bias",
            "model.vision_tower.encoder.layer.3.attention.k_norm.weight",
            "model.vision_tower.encoder.layer.3.layernorm_after.weight",
            "model.vision_tower.encoder.layer.3.lambda_1",
            "model.vision_tower.encoder.layer.3.mlp.fc2.bias",
            "model.multi_modal_projector.linear_2.weight",
            "model.language_model.layers.0.self_attn.q_proj.weight",
            "lm_head.weight",
        ];
        assert!(is_transformers_naming(&names));
        let a = aliases(&names);
        let get = |k: &str| a.get(k).unwrap_or_else(|| panic!("{k} in {a:?}")).clone();
        assert_eq!(
            get("vision_model.embeddings.class_embedding"),
            Alias::Renamed(names[0].into())
        );
        assert_eq!(
            get("vision_model.embeddings.patch_embedding.weight"),
            Alias::Renamed(names[1].into())
        );
        assert_eq!(
            get("vision_model.encoder.layers.3.attn.qkv.weight"),
            Alias::Concat(vec![names[3].into(), names[4].into(), names[5].into()])
        );
        assert_eq!(
            get("vision_model.encoder.layers.3.attn.qkv.bias").sources()[2],
            "model.vision_tower.encoder.layer.3.attention.v_proj.bias"
        );
        for (up, hf) in [
            ("vision_model.encoder.layers.3.attn.proj.bias", 7),
            ("vision_model.encoder.layers.3.attn.k_norm.weight", 8),
            ("vision_model.encoder.layers.3.norm2.weight", 9),
            ("vision_model.encoder.layers.3.ls1", 10),
            ("vision_model.encoder.layers.3.mlp.fc2.bias", 11),
            ("mlp1.3.weight", 12),
            ("language_model.model.layers.0.self_attn.q_proj.weight", 13),
            ("language_model.lm_head.weight", 14),
        ] {
            assert_eq!(get(up), Alias::Renamed(names[hf].into()), "{up}");
        }
        // The older layout: no `model.` prefix, the LLM already upstream-named.
        let old = [
            "vision_tower.embeddings.cls_token",
            "language_model.model.norm.weight",
        ];
        assert!(is_transformers_naming(&old));
        assert_eq!(
            aliases(&old).get("vision_model.embeddings.class_embedding"),
            Some(&Alias::Renamed(old[0].into()))
        );
        // Upstream names are not the transformers naming.
        assert!(!is_transformers_naming(&[
            "vision_model.embeddings.class_embedding",
            "language_model.model.norm.weight",
            "mlp1.0.weight",
        ]));
    }
}
