//! The decoder: Qwen3 and Llama blocks behind one type, [`CausalLm`].
//!
//! Both architectures are pre-norm decoders with RMSNorm, grouped-query attention, half-split
//! ("NeoX") rotary embeddings and a SwiGLU MLP; Qwen3 adds an RMSNorm over each query and key
//! head (`q_norm`, `k_norm`) before rope. Every op goes through [`crate::ops`] or plain tensor
//! algebra, so all weights get gradients (stage 2 trains the LLM).
//!
//! Weight names are the Hugging Face ones (`model.embed_tokens.weight`,
//! `model.layers.N.self_attn.q_proj.weight`, `model.norm.weight`, `lm_head.weight`), read
//! through a [`VarBuilder`]: a `VarMap`-backed builder gives trainable `Var`s, a tensor-map
//! builder gives frozen weights.

use candle_core::{DType, Device, Module, Result, Tensor, bail};
use candle_nn::{Init, VarBuilder};

use crate::ops::Linear;

use super::config::{Arch, LlmConfig};
use crate::ops;

/// Standard deviation of fresh weights when the builder creates variables (`VarMap`); the
/// `initializer_range` default of Llama and Qwen3 in transformers. Ignored when loading.
const INIT_STD: f64 = 0.02;

fn weight_init() -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: INIT_STD,
    }
}

fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder<'_>) -> Result<Linear> {
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", weight_init())?;
    let bias = if bias {
        Some(vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// RMSNorm with a learnt scale (differentiable: [`ops::rms_norm`]).
#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn new(dim: usize, eps: f64, vb: VarBuilder<'_>) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        Ok(Self {
            weight,
            eps: eps as f32,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::rms_norm(xs, &self.weight, self.eps)
    }
}

/// `cos`, `sin`: `f32[seq, head_dim / 2]` for absolute positions `start..start + seq`.
#[derive(Debug, Clone)]
struct RopeTables {
    cos: Tensor,
    sin: Tensor,
}

/// Rotary inverse frequencies `θ^(-2i / head_dim)`, computed in f64 like the reference's
/// float32 path would if it had the precision.
#[derive(Debug, Clone)]
struct Rotary {
    inv_freq: Vec<f64>,
}

impl Rotary {
    fn new(head_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64))
            .collect();
        Self { inv_freq }
    }

    fn tables(
        &self,
        start: usize,
        seq: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<RopeTables> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(seq * half);
        let mut sin = Vec::with_capacity(seq * half);
        for pos in start..start + seq {
            for f in &self.inv_freq {
                let angle = pos as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Ok(RopeTables {
            cos: Tensor::from_vec(cos, (seq, half), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (seq, half), device)?.to_dtype(dtype)?,
        })
    }
}

/// Keys and values of past positions, one entry per layer, for incremental decoding.
///
/// Inference only: the cached tensors are detached, so no gradient flows into earlier steps.
/// Holds `f[b, kv_heads, len, head_dim]` per layer, keys already rotated.
///
/// A batch of prompts of different lengths is left-padded ([`Self::left_padded`]): row `r`
/// starts with `left_pad[r]` filler positions that no real position attends to. Rotary
/// embeddings only see position differences, so a row shifted right by its padding attends
/// exactly as it would alone.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    /// Filler positions at the start of each row (empty: no padding).
    left_pad: Vec<usize>,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
            left_pad: Vec::new(),
        }
    }

    /// An empty cache for a batch whose row `r` begins with `left_pad[r]` filler positions.
    pub fn left_padded(num_layers: usize, left_pad: Vec<usize>) -> Self {
        Self {
            left_pad,
            ..Self::new(num_layers)
        }
    }

    /// Filler positions at the start of each row (empty when the batch is not padded).
    pub fn left_pad(&self) -> &[usize] {
        &self.left_pad
    }

    /// Number of cached positions; the next call's `start_pos` must equal it.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position and the padding (start a new sequence).
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
        self.left_pad.clear();
    }

    /// Appends this step's `k`, `v` to layer `idx` and returns the full keys and values.
    fn append(&mut self, idx: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let Some(slot) = self.layers.get_mut(idx) else {
            bail!(
                "KV cache has {} layers, the model asked for layer {idx}",
                self.layers.len()
            );
        };
        let (k, v) = match slot.take() {
            None => (k.detach(), v.detach()),
            Some((pk, pv)) => (
                Tensor::cat(&[&pk, &k.detach()], 2)?,
                Tensor::cat(&[&pv, &v.detach()], 2)?,
            ),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    /// Qwen3 only: RMSNorm over `head_dim` of each query / key head.
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &LlmConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let bias = cfg.attention_bias;
        let qk_norm = match cfg.model_type {
            Arch::Qwen3 => Some((
                RmsNorm::new(hd, cfg.rms_norm_eps, vb.pp("q_norm"))?,
                RmsNorm::new(hd, cfg.rms_norm_eps, vb.pp("k_norm"))?,
            )),
            Arch::Llama => None,
        };
        Ok(Self {
            q_proj: linear(h, heads * hd, bias, vb.pp("q_proj"))?,
            k_proj: linear(h, kv_heads * hd, bias, vb.pp("k_proj"))?,
            v_proj: linear(h, kv_heads * hd, bias, vb.pp("v_proj"))?,
            o_proj: linear(heads * hd, h, bias, vb.pp("o_proj"))?,
            qk_norm,
            heads,
            kv_heads,
            head_dim: hd,
        })
    }

    /// `xs: [b, seq, hidden]` → `[b, seq, hidden]`; `mask` from [`attention_mask`] (already
    /// tiled over the query groups).
    fn forward(
        &self,
        xs: &Tensor,
        rope: &RopeTables,
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let (b, seq, _) = xs.dims3()?;
        let hd = self.head_dim;
        let q = self.q_proj.forward(xs)?.reshape((b, seq, self.heads, hd))?;
        let k = self
            .k_proj
            .forward(xs)?
            .reshape((b, seq, self.kv_heads, hd))?;
        let v = self
            .v_proj
            .forward(xs)?
            .reshape((b, seq, self.kv_heads, hd))?;
        let (q, k) = match &self.qk_norm {
            Some((qn, kn)) => (qn.forward(&q)?, kn.forward(&k)?),
            None => (q, k),
        };
        // [b, heads, seq, hd]
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let q = ops::rope(&q, &rope.cos, &rope.sin)?;
        let k = ops::rope(&k, &rope.cos, &rope.sin)?;
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };

        // Grouped-query attention without copying keys/values: query head `h` uses key/value
        // head `h / groups` (transformers' `repeat_kv`), so folding the group axis into the
        // query-length axis lets each key/value head serve its `groups` query heads in one
        // matmul. The mask is tiled to match.
        let groups = self.heads / self.kv_heads;
        let q = q.reshape((b, self.kv_heads, groups * seq, hd))?;
        let out = ops::attention(&q, &k, &v, mask, 1.0 / (hd as f64).sqrt())?;
        let out = out
            .reshape((b, self.heads, seq, hd))?
            .transpose(1, 2)?
            .reshape((b, seq, self.heads * hd))?;
        self.o_proj.forward(&out)
    }
}

/// The additive attention mask (`0` keep, `-inf` drop) for queries at the last `q_len` of
/// `kv_len` positions, tiled `groups` times along the query axis (see [`Attention::forward`]):
///
/// - causal: key `j` is dropped after the query's position;
/// - left padding (`left_pad[r]` filler positions at the start of row `r`): a real query never
///   sees a filler key; a filler query sees the fillers before it, so no row is all `-inf`.
///
/// `[groups · q_len, kv_len]` without padding, `[b, 1, groups · q_len, kv_len]` with it;
/// `None` when nothing is dropped (one new query over an unpadded cache).
fn attention_mask(
    q_len: usize,
    kv_len: usize,
    groups: usize,
    left_pad: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Option<Tensor>> {
    let padded = left_pad.iter().any(|&p| p > 0);
    if q_len == 1 && !padded {
        return Ok(None);
    }
    let offset = kv_len - q_len;
    let row = |pad: usize| -> Vec<f32> {
        let one: Vec<f32> = (0..q_len)
            .flat_map(|i| {
                let pos = offset + i;
                (0..kv_len).map(move |j| {
                    if j > pos || (j < pad && pos >= pad) {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        one.repeat(groups)
    };
    let mask = if padded {
        let b = left_pad.len();
        let data: Vec<f32> = left_pad.iter().flat_map(|&p| row(p)).collect();
        Tensor::from_vec(data, (b, 1, groups * q_len, kv_len), device)?
    } else {
        Tensor::from_vec(row(0), (groups * q_len, kv_len), device)?
    };
    Ok(Some(mask.to_dtype(dtype)?))
}

/// SwiGLU: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(cfg: &LlmConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let (h, i, bias) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        Ok(Self {
            gate_proj: linear(h, i, bias, vb.pp("gate_proj"))?,
            up_proj: linear(h, i, bias, vb.pp("up_proj"))?,
            down_proj: linear(i, h, bias, vb.pp("down_proj"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = ops::swiglu(&self.gate_proj.forward(xs)?, &self.up_proj.forward(xs)?)?;
        self.down_proj.forward(&gate)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(cfg: &LlmConfig, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            input_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        rope: &RopeTables,
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let h = (xs
            + self
                .self_attn
                .forward(&self.input_layernorm.forward(xs)?, rope, mask, cache)?)?;
        &h + self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&h)?)?
    }
}

/// A decoder-only language model that takes input embeddings, so image features can be
/// spliced in (see [`super::splice_image_features`]).
#[derive(Debug, Clone)]
pub struct CausalLm {
    cfg: LlmConfig,
    /// `[vocab, hidden]`
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// Shares `embed_tokens` when `tie_word_embeddings`.
    lm_head: Linear,
    rotary: Rotary,
}

impl CausalLm {
    /// Builds the model from `vb` (root prefix; keys `model.*` and `lm_head.weight`).
    ///
    /// With a `VarMap`-backed builder, missing variables are created (normal(0, 0.02) weights,
    /// unit norms, zero biases) and trainable. A missing or wrongly shaped tensor in a loaded
    /// checkpoint is an error naming the key.
    pub fn new(cfg: &LlmConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let model = vb.pp("model");
        let embed_tokens = model.pp("embed_tokens").get_with_hints(
            (cfg.vocab_size, cfg.hidden_size),
            "weight",
            weight_init(),
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, model.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, model.pp("norm"))?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::new(embed_tokens.clone(), None)
        } else {
            linear(cfg.hidden_size, cfg.vocab_size, false, vb.pp("lm_head"))?
        };
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary: Rotary::new(cfg.head_dim, cfg.rope_theta),
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    /// `[vocab, hidden]` input embedding table.
    pub fn embed_weight(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// `[vocab, hidden]` output projection (the same tensor as [`Self::embed_weight`] when tied).
    pub fn lm_head_weight(&self) -> &Tensor {
        self.lm_head.weight()
    }

    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }

    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    /// An empty KV cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// Token embeddings: `ids: u32[b, seq]` → `[b, seq, hidden]`. Ids ≥ `vocab_size` are an
    /// error (not a silent out-of-bounds read).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, seq) = ids.dims2()?;
        let ids = ids.to_dtype(DType::U32)?.flatten_all()?;
        let vocab = self.cfg.vocab_size;
        if let Some(bad) = ids
            .to_vec1::<u32>()?
            .into_iter()
            .find(|&id| id as usize >= vocab)
        {
            bail!("token id {bad} is outside the LLM vocabulary (vocab_size {vocab})");
        }
        self.embed_tokens
            .index_select(&ids, 0)?
            .reshape((b, seq, self.cfg.hidden_size))
    }

    /// Runs the decoder on `embeds: [b, seq, hidden]` at absolute positions
    /// `start_pos..start_pos + seq` and returns the final-normed hidden states
    /// `[b, seq, hidden]` (what action queries read; [`Self::logits`] turns them into logits).
    ///
    /// With a `cache`, `start_pos` must equal `cache.len()`; the new keys/values are appended.
    /// Without one, the sequence attends only to itself (causally), whatever `start_pos` is.
    /// Batches are not padding-masked unless the cache is [`KvCache::left_padded`]: for
    /// training, pad on the right and mask the loss, which the causal mask makes exact.
    pub fn forward_hidden(
        &self,
        embeds: &Tensor,
        start_pos: usize,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, seq, hidden) = embeds.dims3()?;
        if hidden != self.cfg.hidden_size {
            bail!(
                "input embeddings have width {hidden}, the LLM expects hidden_size {}",
                self.cfg.hidden_size
            );
        }
        if seq == 0 {
            bail!("forward_hidden needs at least one position");
        }
        if let Some(cache) = cache.as_deref()
            && cache.len() != start_pos
        {
            bail!(
                "start_pos is {start_pos} but the KV cache holds {} positions; pass start_pos = cache.len()",
                cache.len()
            );
        }
        let (kv_len, left_pad) = match cache.as_deref() {
            Some(c) => (c.len() + seq, c.left_pad().to_vec()),
            None => (seq, Vec::new()),
        };
        if !left_pad.is_empty() && left_pad.len() != b {
            bail!(
                "the KV cache is padded for {} rows but the batch has {b}",
                left_pad.len()
            );
        }
        let rope = self
            .rotary
            .tables(start_pos, seq, embeds.dtype(), embeds.device())?;
        let groups = self.cfg.num_attention_heads / self.cfg.num_key_value_heads;
        let mask = attention_mask(
            seq,
            kv_len,
            groups,
            &left_pad,
            embeds.dtype(),
            embeds.device(),
        )?;
        let mut xs = embeds.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(
                &xs,
                &rope,
                mask.as_ref(),
                cache.as_deref_mut().map(|c| (c, i)),
            )?;
        }
        if let Some(cache) = cache {
            cache.len += seq;
        }
        self.norm.forward(&xs)
    }

    /// `hidden: [b, seq, hidden]` → logits `[b, seq, vocab]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    /// [`Self::forward_hidden`] followed by [`Self::logits`]: `[b, seq, hidden]` → `[b, seq, vocab]`.
    pub fn forward_embeds(
        &self,
        embeds: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.logits(&self.forward_hidden(embeds, start_pos, cache)?)
    }

    /// Token ids in, logits out: `u32[b, seq]` → `[b, seq, vocab]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.forward_embeds(&self.embed(ids)?, start_pos, cache)
    }

    /// Logits of the last position only, `[b, vocab]`; saves the large LM-head matmul over the
    /// prompt during generation.
    pub fn last_logits(
        &self,
        embeds: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let hidden = self.forward_hidden(embeds, start_pos, cache)?;
        let seq = hidden.dim(1)?;
        self.logits(&hidden.narrow(1, seq - 1, 1)?)?.squeeze(1)
    }

    /// Mean token cross-entropy of next-token prediction, for training.
    ///
    /// `logits: [b, seq, vocab]`, `targets: u32[b, seq]` (already shifted: `targets[t]` is the
    /// token after position `t`), `mask: [b, seq]` with 1 where the loss counts, 0 elsewhere
    /// (prompt, padding). Differentiable.
    pub fn masked_cross_entropy(
        logits: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        // One fused pass each way (no [tokens, vocab] log-probabilities); see vipa-kernels.
        let (b, seq, _) = logits.dims3()?;
        if targets.dims() != [b, seq] || mask.dims() != [b, seq] {
            bail!(
                "masked_cross_entropy: logits {:?} need targets and mask of shape [{b}, {seq}], got {:?} and {:?}",
                logits.dims(),
                targets.dims(),
                mask.dims()
            );
        }
        ops::masked_cross_entropy(logits, targets, mask)
    }
}
