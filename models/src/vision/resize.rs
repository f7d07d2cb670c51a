//! Separable cubic resampling, written as the two libraries upstream InternVL relies on do it:
//!
//! - [`torch_bicubic_matrix`]: PyTorch `F.interpolate(mode="bicubic", align_corners=False)`
//!   (cubic convolution with A = −0.75, borders clamped, no antialias). InternViT uses it to
//!   interpolate position embeddings to another patch grid.
//! - [`pil_resize_bicubic`]: Pillow's `Image.resize(BICUBIC)` on 8-bit RGB (A = −0.5, support
//!   widened when downscaling, fixed-point 22-bit coefficients, horizontal then vertical pass
//!   with rounding to u8 in between). torchvision's `T.Resize` on a PIL image — the upstream
//!   InternVL preprocessing — calls exactly this, so our pixels match upstream bit for bit.

use candle_core::{Result, Tensor};

/// Interpolation matrix `f32[n_out, n_in]` of PyTorch's 1-D bicubic resize: `out = M · in`.
pub fn torch_bicubic_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let cc1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = n_in as f64 / n_out as f64;
    let mut m = vec![0f32; n_out * n_in];
    for o in 0..n_out {
        let src = scale * (o as f64 + 0.5) - 0.5;
        let base = src.floor();
        let t = src - base;
        let weights = [cc2(t + 1.0), cc1(t), cc1(1.0 - t), cc2(2.0 - t)];
        for (i, w) in weights.iter().enumerate() {
            let idx = (base as i64 - 1 + i as i64).clamp(0, n_in as i64 - 1) as usize;
            m[o * n_in + idx] += *w as f32;
        }
    }
    m
}

/// Bicubic resize of a channels-last grid `f32[h_in, w_in, c]` to `f32[h_out, w_out, c]` with
/// PyTorch's `align_corners=False` bicubic (two matmuls, so it is differentiable).
pub fn torch_bicubic_resize(xs: &Tensor, h_out: usize, w_out: usize) -> Result<Tensor> {
    let (h_in, w_in, c) = xs.dims3()?;
    if (h_in, w_in) == (h_out, w_out) {
        return Ok(xs.clone());
    }
    let dev = xs.device();
    let dtype = xs.dtype();
    let mh =
        Tensor::from_vec(torch_bicubic_matrix(h_in, h_out), (h_out, h_in), dev)?.to_dtype(dtype)?;
    let mw =
        Tensor::from_vec(torch_bicubic_matrix(w_in, w_out), (w_out, w_in), dev)?.to_dtype(dtype)?;
    // Rows: [h_out, h_in] · [h_in, w_in·c].
    let xs = mh.matmul(&xs.reshape((h_in, w_in * c))?)?;
    // Columns: move w to the front, then [w_out, w_in] · [w_in, h_out·c].
    let xs = xs
        .reshape((h_out, w_in, c))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((w_in, h_out * c))?;
    let xs = mw.matmul(&xs)?.reshape((w_out, h_out, c))?;
    xs.transpose(0, 1)?.contiguous()
}

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Pillow's bicubic kernel, A = −0.5 (`bicubic_filter` in `Resample.c`).
fn pil_cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output index: first input index and fixed-point weights (`precompute_coeffs` +
/// `normalize_coeffs_8bpc` in Pillow's `Resample.c`).
fn pil_coeffs(n_in: usize, n_out: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = n_in as f64 / n_out as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // C casts truncate toward zero; the max/min clamp afterwards, as upstream.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
            let raw: Vec<f64> = (xmin..xmax)
                .map(|x| pil_cubic((x as f64 - center + 0.5) / filterscale))
                .collect();
            let total: f64 = raw.iter().sum();
            let fixed = raw
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { 0.0 };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    (if scaled < 0.0 {
                        scaled - 0.5
                    } else {
                        scaled + 0.5
                    }) as i64
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes 8-bit RGB `u8[h, w, 3]` (row-major) to `u8[h_out, w_out, 3]` exactly as Pillow's
/// `Image.resize((w_out, h_out), Image.BICUBIC)`.
pub fn pil_resize_bicubic(
    rgb: &[u8],
    (h, w): (usize, usize),
    (h_out, w_out): (usize, usize),
) -> Vec<u8> {
    let round = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass (skipped when the width is unchanged, as Pillow does).
    let horizontal = if w_out != w {
        let coeffs = pil_coeffs(w, w_out);
        let mut out = vec![0u8; h * w_out * 3];
        for y in 0..h {
            for (xo, (xmin, ks)) in coeffs.iter().enumerate() {
                for ch in 0..3 {
                    let acc: i64 = ks
                        .iter()
                        .enumerate()
                        .map(|(i, k)| i64::from(rgb[(y * w + xmin + i) * 3 + ch]) * k)
                        .sum();
                    out[(y * w_out + xo) * 3 + ch] = clip8(acc + round);
                }
            }
        }
        out
    } else {
        rgb.to_vec()
    };
    if h_out == h {
        return horizontal;
    }
    let coeffs = pil_coeffs(h, h_out);
    let mut out = vec![0u8; h_out * w_out * 3];
    for (yo, (ymin, ks)) in coeffs.iter().enumerate() {
        for x in 0..w_out {
            for ch in 0..3 {
                let acc: i64 = ks
                    .iter()
                    .enumerate()
                    .map(|(i, k)| i64::from(horizontal[((ymin + i) * w_out + x) * 3 + ch]) * k)
                    .sum();
                out[(yo * w_out + x) * 3 + ch] = clip8(acc + round);
            }
        }
    }
    out
}
