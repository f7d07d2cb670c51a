//! Image-feature splicing: visual tokens replace placeholder tokens in the text embeddings.
//!
//! InternVL writes one `<IMG_CONTEXT>` token per visual token into the prompt
//! (`<img><IMG_CONTEXT>×256</img>` for one 448×448 tile), embeds the ids, and overwrites the
//! placeholder rows with the projected vision features, in reading order. This does the same,
//! differentiably with respect to both the text embeddings and the features.

use candle_core::{DType, Result, Tensor, bail};

use super::model::CausalLm;

/// Replaces the rows of `text_embeds: [b, seq, hidden]` where `ids: u32[b, seq]` equals
/// `placeholder` with the rows of `features: [n_img_tokens, hidden]`, in row-major order
/// (batch 0's placeholders first). Returns `[b, seq, hidden]` in the dtype of `text_embeds`.
///
/// The number of placeholders must equal `n_img_tokens`; otherwise the error says both counts.
pub fn splice_image_features(
    text_embeds: &Tensor,
    ids: &Tensor,
    placeholder: u32,
    features: &Tensor,
) -> Result<Tensor> {
    let (b, seq, hidden) = text_embeds.dims3()?;
    if ids.dims() != [b, seq] {
        bail!(
            "splice: ids have shape {:?}, the text embeddings {:?}",
            ids.dims(),
            text_embeds.dims()
        );
    }
    let (n_feat, feat_hidden) = features.dims2().map_err(|e| {
        e.context(format!(
            "splice: image features must be [n_img_tokens, hidden], got {:?}",
            features.dims()
        ))
    })?;
    if feat_hidden != hidden {
        bail!("splice: image features have width {feat_hidden}, the LLM hidden size is {hidden}");
    }
    let flat_ids = ids.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
    let n_placeholders = flat_ids.iter().filter(|&&id| id == placeholder).count();
    if n_placeholders != n_feat {
        bail!(
            "splice: the ids hold {n_placeholders} image placeholder tokens (id {placeholder}) but \
             {n_feat} image feature rows were given; the prompt needs one placeholder per visual token"
        );
    }
    if n_feat == 0 {
        return Ok(text_embeds.clone());
    }
    // Gather from [text rows; feature rows]: row p of the output is text row p, or feature row
    // k for the k-th placeholder. `index_select` backpropagates into both sources.
    let text_rows = b * seq;
    let mut next_feature = text_rows as u32;
    let index: Vec<u32> = flat_ids
        .iter()
        .enumerate()
        .map(|(p, &id)| {
            if id == placeholder {
                next_feature += 1;
                next_feature - 1
            } else {
                p as u32
            }
        })
        .collect();
    let source = Tensor::cat(
        &[
            &text_embeds.reshape((text_rows, hidden))?,
            &features.to_dtype(text_embeds.dtype())?,
        ],
        0,
    )?;
    let index = Tensor::from_vec(index, text_rows, text_embeds.device())?;
    source.index_select(&index, 0)?.reshape((b, seq, hidden))
}

impl CausalLm {
    /// Embeds `ids: u32[b, seq]` and splices `features: [n_img_tokens, hidden]` in place of the
    /// `placeholder` tokens (see [`splice_image_features`]). The placeholder id itself need not
    /// be inside the vocabulary: those rows are never looked up.
    pub fn embed_with_images(
        &self,
        ids: &Tensor,
        placeholder: u32,
        features: &Tensor,
    ) -> Result<Tensor> {
        // Look placeholders up as id 0; splicing overwrites those rows.
        let is_placeholder = ids.to_dtype(DType::U32)?.eq(placeholder)?;
        let safe_ids = is_placeholder.where_cond(
            &ids.zeros_like()?.to_dtype(DType::U32)?,
            &ids.to_dtype(DType::U32)?,
        )?;
        splice_image_features(&self.embed(&safe_ids)?, ids, placeholder, features)
    }
}
