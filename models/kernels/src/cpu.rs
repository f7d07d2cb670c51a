//! Shared plumbing for the CPU kernels: typed views of `CpuStorage`, the accumulation float
//! trait, and the row-chunking used for rayon parallelism.
//!
//! Every kernel computes in an accumulation type `F`: `f64` for f64 tensors (so finite-difference
//! gradient checks are exact enough), `f32` for f32, bf16 and f16 tensors (half types are widened
//! on load and rounded once on store, like candle's own CPU ops).

use std::borrow::Cow;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, WithDType, bail};
use rayon::prelude::*;

/// The float type a kernel accumulates in (`f32` or `f64`).
pub(crate) trait Acc:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn exp(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn ln(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn of_f64(v: f64) -> Self;
    fn of_usize(v: usize) -> Self;
}

impl Acc for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    #[inline(always)]
    fn exp(self) -> Self {
        fast_exp_f32(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    /// `1 - 2 / (e^{2x} + 1)` on [`fast_exp_f32`]: vectorizes, absolute error ≈ 2e-7, and
    /// saturates to ±1 instead of overflowing.
    #[inline(always)]
    fn tanh(self) -> Self {
        1.0 - 2.0 / (fast_exp_f32(2.0 * self) + 1.0)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f32::ln(self)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        f32::max(self, other)
    }
    fn of_f64(v: f64) -> Self {
        v as f32
    }
    fn of_usize(v: usize) -> Self {
        v as f32
    }
}

impl Acc for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        f64::max(self, other)
    }
    fn of_f64(v: f64) -> Self {
        v
    }
    fn of_usize(v: usize) -> Self {
        v as f64
    }
}

/// `exp(x)` for f32 without a libm call, so row loops auto-vectorize.
///
/// Range reduction `x = n ln2 + r`, |r| ≤ ln2/2, then a degree-6 polynomial for `exp(r)` and an
/// exponent-bit shift for `2^n`. Max relative error ≈ 2e-7 (about 2 ulp) on [-87.3, 88.3];
/// below -87.3 it returns 0 and above 88.3 it saturates at `exp(88.3)`. Softmax only feeds it
/// `x - max ≤ 0`, where both limits are right. NaN propagates.
#[inline(always)]
pub(crate) fn fast_exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Clamp keeps the exponent arithmetic in range; -inf maps to the lower clamp, handled below.
    let xc = x.clamp(-87.3, 88.3);
    // Round to nearest by adding and removing 1.5·2²³ (the sum's ulp is 1): plain float
    // arithmetic, so the loop vectorizes; `f32::round` is a libm call on baseline x86-64.
    const ROUNDER: f32 = 12_582_912.0;
    let shifted = xc * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = xc - n * LN2_HI - n * LN2_LO;
    // Taylor/minimax-style coefficients for exp(r) on |r| <= ln2/2.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    // `shifted`'s low mantissa bits hold n (|n| ≤ 127) on top of the rounder's 0x4B40_0000:
    // integer bit arithmetic instead of a float-to-int cast (Rust's saturating `as` blocks
    // vectorization). Wrapping u32 arithmetic; the result is n + 127 ∈ [1, 254].
    let biased = shifted
        .to_bits()
        .wrapping_sub(0x4B40_0000)
        .wrapping_add(127);
    let bits = biased << 23;
    let v = p * f32::from_bits(bits);
    if x < -87.3 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// The elements of a contiguous tensor, widened to the accumulation type.
pub(crate) enum Elems<'a> {
    F32(Cow<'a, [f32]>),
    F64(&'a [f64]),
}

fn widen<T: WithDType>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.to_f64() as f32).collect()
}

/// Views `storage` through `layout` as a flat, contiguous element slice.
///
/// The public wrappers call `Tensor::contiguous` (a differentiable no-op when the tensor already
/// is contiguous) before applying an op, so a strided layout here is a bug, not bad input.
pub(crate) fn elems<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<Elems<'a>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op}: expected a contiguous input (call .contiguous() first), got {layout:?}")
    };
    Ok(match storage {
        CpuStorage::F32(v) => Elems::F32(Cow::Borrowed(&v[start..end])),
        CpuStorage::F64(v) => Elems::F64(&v[start..end]),
        CpuStorage::BF16(v) => Elems::F32(Cow::Owned(widen(&v[start..end]))),
        CpuStorage::F16(v) => Elems::F32(Cow::Owned(widen(&v[start..end]))),
        other => bail!(
            "{op}: unsupported dtype {:?}; use f32, f64, bf16 or f16",
            other.dtype()
        ),
    })
}

impl Elems<'_> {
    pub(crate) fn f32(&self, op: &str) -> Result<&[f32]> {
        match self {
            Elems::F32(v) => Ok(v),
            Elems::F64(_) => bail!("{op}: all inputs must have the same dtype"),
        }
    }
    pub(crate) fn f64(&self, op: &str) -> Result<&[f64]> {
        match self {
            Elems::F64(v) => Ok(v),
            Elems::F32(_) => bail!("{op}: all inputs must have the same dtype"),
        }
    }
}

/// Wraps an f32 result as storage of `dtype` (f32, bf16 or f16), rounding once.
pub(crate) fn store_f32(v: Vec<f32>, dtype: DType) -> Result<CpuStorage> {
    Ok(match dtype {
        DType::F32 => CpuStorage::F32(v),
        DType::BF16 => CpuStorage::BF16(v.iter().map(|&x| WithDType::from_f64(x as f64)).collect()),
        DType::F16 => CpuStorage::F16(v.iter().map(|&x| WithDType::from_f64(x as f64)).collect()),
        other => bail!("unsupported dtype {other:?} for an f32-computed result"),
    })
}

/// Rows per rayon task: about 4 tasks per thread for load balance, at least one row, and at
/// least ~8k elements per task so tiny tensors don't pay scheduling overhead.
pub(crate) fn rows_per_task(rows: usize, row_len: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_balance = rows.div_ceil(threads * 4);
    let by_size = 8192usize.div_ceil(row_len.max(1));
    by_balance.max(by_size).max(1)
}

/// `out[row] = f(a[row], b[row])` for every row of `d` elements of two same-size inputs, rows
/// spread over rayon tasks ([`rows_per_task`]); `f` writes the output row.
pub(crate) fn map_rows2<F: Acc>(
    a: &[F],
    b: &[F],
    d: usize,
    f: impl Fn(&mut [F], &[F], &[F]) + Sync,
) -> Vec<F> {
    let mut out = vec![F::ZERO; a.len()];
    if d == 0 {
        return out;
    }
    let chunk = rows_per_task(a.len() / d, d);
    out.par_chunks_mut(chunk * d)
        .zip(a.par_chunks(chunk * d).zip(b.par_chunks(chunk * d)))
        .for_each(|(oc, (ac, bc))| {
            for ((o, a), b) in oc
                .chunks_exact_mut(d)
                .zip(ac.chunks_exact(d))
                .zip(bc.chunks_exact(d))
            {
                f(o, a, b);
            }
        });
    out
}

/// The last-axis length and the number of rows of a shape; errors on a rank-0 tensor.
pub(crate) fn rows_and_len(dims: &[usize], op: &str) -> Result<(usize, usize)> {
    let Some(&d) = dims.last() else {
        bail!("{op}: expected a tensor with at least one axis, got a scalar")
    };
    let rows = dims.iter().product::<usize>().checked_div(d).unwrap_or(0);
    Ok((rows, d))
}

/// Lanes of the independent partial results below: a sequential float reduction cannot be
/// vectorized (IEEE addition is not associative), eight interleaved ones can.
const LANES: usize = 8;

/// `max(x)` (`-inf` for an empty row), vectorizable.
#[inline]
pub(crate) fn row_max<F: Acc>(x: &[F]) -> F {
    let mut acc = [F::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    let m = tail.iter().fold(F::NEG_INFINITY, |m, &v| m.max(v));
    acc.iter().fold(m, |m, &v| m.max(v))
}

/// `Σ exp(x - shift)`, vectorizable: exponentials of a block go to a stack buffer in a plain
/// element-wise loop (which LLVM vectorizes), then the buffer is added into eight lanes.
#[inline]
pub(crate) fn row_sum_exp<F: Acc>(x: &[F], shift: F) -> F {
    const BLOCK: usize = 8 * LANES;
    let mut buf = [F::ZERO; BLOCK];
    let mut acc = [F::ZERO; LANES];
    let chunks = x.chunks_exact(BLOCK);
    let tail = chunks.remainder();
    for c in chunks {
        for (b, &v) in buf.iter_mut().zip(c) {
            *b = (v - shift).exp();
        }
        for lane in buf.chunks_exact(LANES) {
            for (a, &v) in acc.iter_mut().zip(lane) {
                *a += v;
            }
        }
    }
    let s = tail.iter().fold(F::ZERO, |s, &v| s + (v - shift).exp());
    acc.iter().fold(s, |s, &v| s + v)
}

/// `Σ x`, vectorizable (eight interleaved partial sums).
#[inline]
pub(crate) fn row_sum<F: Acc>(x: &[F]) -> F {
    let mut acc = [F::ZERO; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let s = tail.iter().fold(F::ZERO, |s, &v| s + v);
    acc.iter().fold(s, |s, &v| s + v)
}
