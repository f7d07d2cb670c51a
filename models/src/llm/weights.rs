//! Checkpoint loading: Hugging Face safetensors and llama.cpp GGUF, into tensors named with the
//! Hugging Face keys, and into trainable `VarMap`s.
//!
//! Every error names the file, and the key where there is one, so a bad checkpoint says which
//! tensor of which file to look at.
//!
//! # GGUF
//! GGUF tensors are dequantised to f32 and renamed to the Hugging Face keys
//! (`blk.N.attn_q.weight` → `model.layers.N.self_attn.q_proj.weight`, …). llama.cpp's converter
//! permutes the rows of the Llama query/key projections so that its interleaved ("GPT-J")
//! rope gives the same result as Hugging Face's half-split ("NeoX") rope. We undo that
//! permutation here, so one model code path (half-split rope, [`crate::ops::rope`]) serves
//! both formats and GGUF weights are bit-for-bit the Hugging Face layout. Qwen3 GGUF files
//! are not permuted (llama.cpp runs Qwen with NeoX rope already).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Result, Tensor, Var, bail};
use candle_nn::{VarBuilder, VarMap};

use super::config::{Arch, LlmConfig};
use super::model::CausalLm;

fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads one or more `.safetensors` files (a sharded checkpoint) into one tensor map.
///
/// A missing, truncated or corrupt file is an error naming it; a key present in two shards is
/// an error too.
pub fn load_safetensors(
    paths: &[impl AsRef<Path>],
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut all = HashMap::new();
    for path in paths {
        let path = path.as_ref();
        let tensors = candle_core::safetensors::load(path, device)
            .map_err(|e| e.context(format!("reading safetensors file {}", path.display())))?;
        // Sorted, so the "appears twice" error is the same on every run.
        let mut tensors: Vec<(String, Tensor)> = tensors.into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, tensor) in tensors {
            if all.insert(name.clone(), tensor).is_some() {
                bail!("tensor {name} appears twice (again in {})", path.display());
            }
        }
    }
    Ok(all)
}

/// Builds a frozen [`CausalLm`] from a tensor map with Hugging Face keys.
///
/// `source` names where the tensors came from (file names) for error messages.
pub fn model_from_tensors(
    cfg: &LlmConfig,
    tensors: HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
    source: &str,
) -> Result<CausalLm> {
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    CausalLm::new(cfg, vb).map_err(|e| {
        e.context(format!(
            "loading {:?} LLM weights from {source}",
            cfg.model_type
        ))
    })
}

impl CausalLm {
    /// Loads a frozen model from Hugging Face safetensors files.
    pub fn from_safetensors(
        cfg: &LlmConfig,
        paths: &[impl AsRef<Path>],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let tensors = load_safetensors(&paths, device)?;
        model_from_tensors(cfg, tensors, dtype, device, &describe(&paths))
    }
}

/// Turns a tensor map into a `VarMap` of trainable variables (cast to `dtype`), so that
/// `CausalLm::new(cfg, VarBuilder::from_varmap(&varmap, dtype, device))` trains from these
/// weights. Extra tensors are kept (and ignored by the model).
pub fn varmap_from_tensors(tensors: &HashMap<String, Tensor>, dtype: DType) -> Result<VarMap> {
    let varmap = VarMap::new();
    {
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::msg("VarMap lock poisoned"))?;
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        for name in names {
            let tensor = &tensors[name];
            data.insert(name.clone(), Var::from_tensor(&tensor.to_dtype(dtype)?)?);
        }
    }
    Ok(varmap)
}

/// A GGUF checkpoint read into f32 tensors with Hugging Face keys.
#[derive(Debug)]
pub struct GgufCheckpoint {
    /// From the GGUF metadata (`{arch}.block_count`, …).
    pub config: LlmConfig,
    /// Dequantised f32 tensors, Hugging Face names and layout (Q/K un-permuted).
    pub tensors: HashMap<String, Tensor>,
    /// The raw header, for the tokenizer ([`super::tokenizer::tokenizer_from_gguf`]).
    pub content: Content,
}

impl GgufCheckpoint {
    /// Reads and dequantises every tensor of a GGUF file (Llama or Qwen3 architecture).
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| {
            candle_core::Error::msg(format!("opening GGUF file {}: {e}", path.display()))
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| e.context(format!("reading the GGUF header of {}", path.display())))?;
        let config = config_from_gguf(&content)
            .map_err(|e| e.context(format!("GGUF metadata of {}", path.display())))?;
        let mut names: Vec<&String> = content.tensor_infos.keys().collect();
        names.sort();
        let mut tensors = HashMap::new();
        for name in names {
            let context = || format!("tensor {name} in {}", path.display());
            let qtensor = content
                .tensor(&mut reader, name, device)
                .map_err(|e| e.context(context()))?;
            let tensor = qtensor
                .dequantize(device)
                .map_err(|e| e.context(context()))?;
            let hf_name = hf_name(name).ok_or_else(|| {
                candle_core::Error::msg(format!(
                    "{}: no Hugging Face equivalent for this tensor",
                    context()
                ))
            })?;
            let tensor = match (config.model_type, hf_name.rsplit('.').nth(1)) {
                (Arch::Llama, Some("q_proj")) => {
                    unpermute_rows(&tensor, config.num_attention_heads)
                }
                (Arch::Llama, Some("k_proj")) => {
                    unpermute_rows(&tensor, config.num_key_value_heads)
                }
                _ => Ok(tensor),
            }
            .map_err(|e| e.context(context()))?;
            tensors.insert(hf_name, tensor);
        }
        Ok(Self {
            config,
            tensors,
            content,
        })
    }

    /// Builds a frozen model (weights cast to `dtype`).
    pub fn into_model(self, dtype: DType, device: &Device, source: &str) -> Result<CausalLm> {
        model_from_tensors(&self.config, self.tensors, dtype, device, source)
    }
}

/// GGUF tensor name → Hugging Face key.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = rest.split_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// Undoes llama.cpp's `permute(w, n_head)` on `w: [n_head · head_dim, …]` (weights `[out, in]`
/// or biases `[out]`).
///
/// llama.cpp reorders each head's rows from `[first half; second half]` (half-split rope pairs
/// row `i` with row `i + head_dim/2`) to interleaved pairs `(i, i + head_dim/2)` side by side.
/// Viewing the rows as `[n_head, head_dim/2, 2]` and swapping the last two axes restores
/// `[n_head, 2, head_dim/2]`, the Hugging Face order.
pub fn unpermute_rows(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let Some((&rows, rest)) = dims.split_first() else {
        bail!("cannot un-permute a scalar");
    };
    if n_head == 0 || rows % (2 * n_head) != 0 {
        bail!("un-permute: {rows} rows do not split into {n_head} heads of even width");
    }
    let half = rows / n_head / 2;
    let inner: usize = rest.iter().product();
    w.reshape((n_head, half, 2, inner))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

fn meta<'a>(content: &'a Content, key: &str) -> Result<&'a Value> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| candle_core::Error::msg(format!("missing GGUF metadata key `{key}`")))
}

fn meta_usize(content: &Content, key: &str) -> Result<usize> {
    let n = match meta(content, key)? {
        Value::I32(n) => u64::try_from(*n).ok(),
        Value::I64(n) => u64::try_from(*n).ok(),
        other => other.to_u64().ok(),
    };
    n.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
        candle_core::Error::msg(format!(
            "GGUF metadata key `{key}` is not a non-negative integer"
        ))
    })
}

fn meta_u32(content: &Content, key: &str) -> Option<u32> {
    meta_usize(content, key)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
}

/// f32 metadata as the decimal the converter wrote: `1e-5` stored as f32 reads back as
/// 9.99999974e-6; its shortest decimal form restores the intended 1e-5.
fn meta_f64(content: &Content, key: &str) -> Result<f64> {
    let v = meta(content, key)?;
    match v {
        Value::F64(x) => Ok(*x),
        other => {
            let x = other
                .to_f32()
                .map_err(|e| e.context(format!("GGUF metadata key `{key}`")))?;
            format!("{x}")
                .parse::<f64>()
                .map_err(candle_core::Error::wrap)
        }
    }
}

/// Builds the [`LlmConfig`] from GGUF metadata (`general.architecture` = `llama` or `qwen3`).
pub fn config_from_gguf(content: &Content) -> Result<LlmConfig> {
    let arch_name = meta(content, "general.architecture")?.to_string()?.clone();
    let model_type = match arch_name.as_str() {
        "llama" => Arch::Llama,
        "qwen3" => Arch::Qwen3,
        other => bail!("GGUF architecture `{other}` is not supported (llama, qwen3)"),
    };
    let key = |k: &str| format!("{arch_name}.{k}");
    let hidden_size = meta_usize(content, &key("embedding_length"))?;
    let num_attention_heads = meta_usize(content, &key("attention.head_count"))?;
    let num_key_value_heads =
        meta_usize(content, &key("attention.head_count_kv")).unwrap_or(num_attention_heads);
    let head_dim = meta_usize(content, &key("attention.key_length"))
        .or_else(|_| meta_usize(content, &key("rope.dimension_count")))
        .unwrap_or(hidden_size / num_attention_heads.max(1));
    let vocab_size = match meta_usize(content, &key("vocab_size")) {
        Ok(n) => n,
        Err(_) => meta(content, "tokenizer.ggml.tokens")?.to_vec()?.len(),
    };
    let cfg = LlmConfig {
        model_type,
        vocab_size,
        hidden_size,
        intermediate_size: meta_usize(content, &key("feed_forward_length"))?,
        num_hidden_layers: meta_usize(content, &key("block_count"))?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        max_position_embeddings: meta_usize(content, &key("context_length"))?,
        rms_norm_eps: meta_f64(content, &key("attention.layer_norm_rms_epsilon"))?,
        rope_theta: meta_f64(content, &key("rope.freq_base")).unwrap_or(10_000.0),
        // llama.cpp writes no `output.weight` when the head is tied to the embeddings.
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        attention_bias: content.tensor_infos.contains_key("blk.0.attn_q.bias"),
        mlp_bias: content.tensor_infos.contains_key("blk.0.ffn_up.bias"),
        bos_token_id: meta_u32(content, "tokenizer.ggml.bos_token_id"),
        eos_token_id: meta_u32(content, "tokenizer.ggml.eos_token_id")
            .into_iter()
            .collect(),
    };
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_gguf_names() {
        assert_eq!(
            hf_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(
            hf_name("blk.12.attn_q.weight").unwrap(),
            "model.layers.12.self_attn.q_proj.weight"
        );
        assert_eq!(
            hf_name("blk.3.ffn_down.weight").unwrap(),
            "model.layers.3.mlp.down_proj.weight"
        );
        assert_eq!(
            hf_name("blk.0.attn_k_norm.weight").unwrap(),
            "model.layers.0.self_attn.k_norm.weight"
        );
        assert!(hf_name("blk.x.attn_q.weight").is_none());
        assert!(hf_name("rope_freqs.weight").is_none());
    }

    /// llama.cpp's permute, written out index by index (independent of the reshape trick).
    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (n_head, head_dim, cols) = (3, 4, 2);
        let rows = n_head * head_dim;
        let hf: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        // gguf row (h, i, j) = hf row (h, j, i) with i < head_dim/2, j ∈ {0, 1}.
        let mut gguf = vec![0f32; rows * cols];
        for h in 0..n_head {
            for i in 0..head_dim / 2 {
                for j in 0..2 {
                    let g = h * head_dim + i * 2 + j;
                    let f = h * head_dim + j * (head_dim / 2) + i;
                    gguf[g * cols..(g + 1) * cols].copy_from_slice(&hf[f * cols..(f + 1) * cols]);
                }
            }
        }
        let gguf = Tensor::from_vec(gguf, (rows, cols), &Device::Cpu).unwrap();
        let back = unpermute_rows(&gguf, n_head).unwrap();
        assert_eq!(back.flatten_all().unwrap().to_vec1::<f32>().unwrap(), hf);
        assert!(unpermute_rows(&back, 5).is_err());
    }
}
