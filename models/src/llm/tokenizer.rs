//! Tokenizers from a Hugging Face `tokenizer.json` or from GGUF metadata.

use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{Result, bail};
use tokenizers::Tokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

/// Reads a Hugging Face `tokenizer.json`.
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    Tokenizer::from_file(path)
        .map_err(|e| candle_core::Error::msg(format!("reading tokenizer {}: {e}", path.display())))
}

/// Builds the tokenizer stored in GGUF metadata (`tokenizer.ggml.*`, GPT-2 style BPE, as in
/// SmolLM2 and Qwen GGUF files).
///
/// candle's builder gives pre-tokenizer names it does not know (SmolLM2's `smollm`, plain
/// `gpt2`) the GPT-2 byte-level pre-tokenizer with `add_prefix_space = true`, which turns
/// `<|im_start|>user` into `<|im_start|>` `Ġuser` instead of `user`. When the file says
/// `tokenizer.ggml.add_space_prefix = false` we put back a byte-level pre-tokenizer without
/// the prefix space, as transformers' GGUF converter does (checked against it on SmolLM2).
pub fn tokenizer_from_gguf(content: &Content) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_gguf(content)
        .map_err(|e| e.context("building the tokenizer from GGUF metadata"))?;
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str);
    // The pre-tokenizers candle configures explicitly (and correctly) itself.
    let candle_handles = matches!(pre, Some("qwen2" | "smaug-bpe" | "lfm2" | "llama3"));
    let add_space_prefix = content
        .metadata
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok());
    if !candle_handles && add_space_prefix == Some(false) {
        // (add_prefix_space, trim_offsets, use_regex)
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    }
    Ok(tokenizer)
}

/// Encodes `text` without adding BOS/EOS (prompts here spell out their special tokens).
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(candle_core::Error::msg)?;
    Ok(encoding.get_ids().to_vec())
}

/// Decodes ids, keeping special tokens (motion tokens are special tokens).
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    tokenizer
        .decode(ids, false)
        .map_err(candle_core::Error::msg)
}

/// The id of a token that must exist, e.g. `<IMG_CONTEXT>` or `<|im_end|>`.
pub fn token_id(tokenizer: &Tokenizer, token: &str) -> Result<u32> {
    match tokenizer.token_to_id(token) {
        Some(id) => Ok(id),
        None => bail!("the tokenizer has no token {token}"),
    }
}
