//! Image preprocessing for InternViT, as upstream InternVL's `build_transform`:
//! `Resize((s, s), BICUBIC)` on the PIL image → `ToTensor()` (÷255) → `Normalize(mean, std)`
//! with the ImageNet statistics. Input is 8-bit RGB `u8[h, w, 3]`; output `f32[3, s, s]`.
//!
//! Upstream additionally tiles large images into up to 12 448-px crops plus a thumbnail
//! ("dynamic high resolution"); VIPA feeds one 448-px view per camera, so we resize the whole
//! frame (equivalent to `max_num = 1`).

use candle_core::{Device, Error, Result, Tensor};

use crate::vision::resize::pil_resize_bicubic;

/// ImageNet channel means (R, G, B) used by InternVL (`IMAGENET_MEAN`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (R, G, B) used by InternVL (`IMAGENET_STD`).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Resizes and normalises one RGB image.
///
/// `rgb: u8[h, w, 3]` row-major → `f32[3, size, size]` (channels first, normalised).
pub fn preprocess_rgb(
    rgb: &[u8],
    height: usize,
    width: usize,
    size: usize,
    device: &Device,
) -> Result<Tensor> {
    if rgb.len() != height * width * 3 {
        return Err(Error::Msg(format!(
            "preprocess: image buffer has {} bytes, expected {height}×{width}×3 = {}",
            rgb.len(),
            height * width * 3
        )));
    }
    if height == 0 || width == 0 || size == 0 {
        return Err(Error::Msg(format!(
            "preprocess: empty image ({height}×{width}) or target size {size}"
        )));
    }
    let resized = pil_resize_bicubic(rgb, (height, width), (size, size));
    let mut chw = vec![0f32; 3 * size * size];
    for (px, pixel) in resized.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            // Same float32 order of operations as ToTensor + Normalize.
            let x = f32::from(pixel[ch]) / 255.0;
            chw[ch * size * size + px] = (x - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];
        }
    }
    Tensor::from_vec(chw, (3, size, size), device)
}

/// Preprocesses a batch of same-size images into `f32[b, 3, size, size]`.
pub fn preprocess_batch(
    images: &[&[u8]],
    height: usize,
    width: usize,
    size: usize,
    device: &Device,
) -> Result<Tensor> {
    let items = images
        .iter()
        .map(|img| preprocess_rgb(img, height, width, size, device))
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&items, 0)
}
