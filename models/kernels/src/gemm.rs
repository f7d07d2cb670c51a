//! BLAS-backed matrix products as candle `CustomOp`s (feature `blas`): the strided operand
//! views, the rayon-parallel batched GEMM, and the ops behind [`crate::linear`] and
//! [`crate::matmul`].
//!
//! Operands are read in place whenever their last two axes form a BLAS matrix (row-major with
//! a row stride, or its transpose), so `w.t()`, `k.t()` and `dyᵀ` are free views; other layouts
//! are made contiguous by the callers first (`Tensor::contiguous`, differentiable).

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail,
};
use rayon::prelude::*;

use crate::blas::{BlasFloat, MatRef};

/// One operand of a (batched) GEMM: the batch axes collapse to one stride, the last two axes
/// are a `rows × cols` matrix with leading dimension `ld` (transposed storage if `trans`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    start: usize,
    batch: usize,
    batch_stride: usize,
    rows: usize,
    cols: usize,
    ld: usize,
    trans: bool,
}

impl Operand {
    /// The view of `layout` (rank ≥ 2), or `None` when its strides are not BLAS-able.
    pub(crate) fn of(layout: &Layout) -> Option<Operand> {
        let dims = layout.dims();
        let stride = layout.stride();
        let r = dims.len();
        if r < 2 {
            return None;
        }
        let (rows, cols) = (dims[r - 2], dims[r - 1]);
        let (s0, s1) = (stride[r - 2], stride[r - 1]);
        // Strides of length-1 axes are meaningless; a matrix is row-major if its elements
        // within a row are adjacent and rows do not overlap, or transposed the other way round.
        let (ld, trans) = if (cols <= 1 || s1 == 1) && (rows <= 1 || s0 >= cols.max(1)) {
            (if rows <= 1 { cols.max(1) } else { s0 }, false)
        } else if (rows <= 1 || s0 == 1) && (cols <= 1 || s1 >= rows.max(1)) {
            (if cols <= 1 { rows.max(1) } else { s1 }, true)
        } else {
            return None;
        };
        // Batch axes: merge into one stride, ignoring length-1 axes (a stride of 0 — a
        // broadcast batch — is allowed: every batch reads the same matrix).
        let mut batch = 1usize;
        let mut batch_stride = 0usize;
        let mut expect: Option<usize> = None;
        for i in (0..r - 2).rev() {
            if dims[i] == 1 {
                continue;
            }
            match expect {
                None => batch_stride = stride[i],
                Some(e) if e == stride[i] => {}
                Some(_) => return None,
            }
            expect = Some(stride[i] * dims[i]);
            batch *= dims[i];
        }
        Some(Operand {
            start: layout.start_offset(),
            batch,
            batch_stride,
            rows,
            cols,
            ld,
            trans,
        })
    }

    /// The transpose (swap the last two axes): a free view.
    pub(crate) fn t(self) -> Operand {
        Operand {
            rows: self.cols,
            cols: self.rows,
            trans: !self.trans,
            ..self
        }
    }

    fn mat<'a, T>(&self, data: &'a [T], batch_index: usize) -> MatRef<'a, T> {
        let offset = self.start + batch_index * self.batch_stride;
        MatRef {
            data: data.get(offset..).unwrap_or(&[]),
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
            trans: self.trans,
        }
    }
}

/// Whether `t`'s layout can feed a GEMM as is.
pub(crate) fn is_blas_ready(t: &Tensor) -> bool {
    Operand::of(t.layout()).is_some()
}

/// `t` itself if it is BLAS-able, else a contiguous copy (differentiable).
pub(crate) fn blas_ready(t: &Tensor) -> Result<Tensor> {
    if is_blas_ready(t) {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

/// `c[i] ← a[i] · b[i] + beta · c[i]` for every batch `i`; `c` is `[batch, m, n]` contiguous.
/// The `batch × m` output rows are split into rayon tasks, each one single-threaded BLAS call.
fn gemm_batched<T: BlasFloat>(
    a: &[T],
    ao: &Operand,
    b: &[T],
    bo: &Operand,
    beta: T,
    c: &mut [T],
) -> Result<()> {
    let (m, k, n) = (ao.rows, ao.cols, bo.cols);
    let batch = ao.batch.max(bo.batch);
    if c.len() != batch * m * n {
        bail!(
            "gemm: output has {} elements, expected {batch}×{m}×{n}",
            c.len()
        )
    }
    if m == 0 || n == 0 || batch == 0 {
        return Ok(());
    }
    // About two tasks per thread over the whole batch (load balance on a shared machine), but
    // at least ~1 MFLOP per task, and row blocks in multiples of 16 (the sgemm micro-kernel
    // height) so each call runs full tiles.
    let threads = rayon::current_num_threads().max(1);
    let splits = (2 * threads).div_ceil(batch);
    let min_rows = (1usize << 20).div_ceil(2 * n * k.max(1));
    let mut rows = m.div_ceil(splits).max(min_rows);
    if rows < m {
        rows = rows.div_ceil(16) * 16;
    }
    let rows = rows.clamp(1, m);
    c.par_chunks_mut(m * n)
        .enumerate()
        .try_for_each(|(bi, cb)| -> Result<()> {
            let am = ao.mat(a, if ao.batch > 1 { bi } else { 0 });
            let bm = bo.mat(b, if bo.batch > 1 { bi } else { 0 });
            cb.par_chunks_mut(rows * n)
                .enumerate()
                .try_for_each(|(ci, cc)| {
                    let r0 = ci * rows;
                    T::gemm(am.rows_range(r0, r0 + rows), bm, beta, cc, n)
                })
        })
}

/// The f32 / f64 slice of a CPU storage.
enum Data<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

fn data<'a>(s: &'a CpuStorage, op: &str) -> Result<Data<'a>> {
    match s {
        CpuStorage::F32(v) => Ok(Data::F32(v)),
        CpuStorage::F64(v) => Ok(Data::F64(v)),
        _ => bail!("{op}: the BLAS path takes f32 or f64 (callers convert other dtypes)"),
    }
}

fn operand(l: &Layout, op: &str) -> Result<Operand> {
    Operand::of(l).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{op}: operand layout {l:?} is not BLAS-able (call blas_ready first)"
        ))
    })
}

/// `a · b` over matching batch axes, no backward (the building block of the backward passes).
pub(crate) struct MatMulNoBwd;

/// `a · b` with a backward pass (`∂a = g · bᵀ`, `∂b = aᵀ · g`).
pub(crate) struct MatMul;

fn matmul_fwd(
    name: &str,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let (ao, bo) = (operand(l1, name)?, operand(l2, name)?);
    let (d1, d2) = (l1.dims(), l2.dims());
    let r = d1.len();
    if d2.len() != r || d1[..r - 2] != d2[..r - 2] || ao.cols != bo.rows {
        bail!("{name}: shapes {d1:?} · {d2:?} do not multiply (batch axes must match)")
    }
    let mut dims = d1[..r - 2].to_vec();
    dims.extend([ao.rows, bo.cols]);
    let len = dims.iter().product();
    let out = match (data(s1, name)?, data(s2, name)?) {
        (Data::F32(a), Data::F32(b)) => {
            let mut c = vec![0f32; len];
            gemm_batched(a, &ao, b, &bo, 0.0, &mut c)?;
            CpuStorage::F32(c)
        }
        (Data::F64(a), Data::F64(b)) => {
            let mut c = vec![0f64; len];
            gemm_batched(a, &ao, b, &bo, 0.0, &mut c)?;
            CpuStorage::F64(c)
        }
        _ => bail!("{name}: both operands must have the same dtype"),
    };
    Ok((out, Shape::from(dims)))
}

/// `a · b` without recording a backward op; makes the operands BLAS-able first.
pub(crate) fn matmul_no_bwd(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    blas_ready(a)?.apply_op2_no_bwd(&blas_ready(b)?, &MatMulNoBwd)
}

impl CustomOp2 for MatMulNoBwd {
    fn name(&self) -> &'static str {
        "vipa-matmul-nobwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        matmul_fwd(self.name(), s1, l1, s2, l2)
    }
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "vipa-matmul"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        matmul_fwd(self.name(), s1, l1, s2, l2)
    }
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Frozen operands (plain tensors, not on a path from a `Var`) get no gradient at all:
        // for a frozen weight that skips a whole GEMM, which candle's own matmul computes.
        let r = a.rank();
        let da = if a.track_op() {
            Some(matmul_no_bwd(g, &b.transpose(r - 2, r - 1)?)?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(matmul_no_bwd(&a.transpose(r - 2, r - 1)?, g)?)
        } else {
            None
        };
        Ok((da, db))
    }
}

/// `y = x · wᵀ (+ b)` for `x: [n, in]`, `w: [out, in]`, `b: [out]`; the bias initialises the
/// output rows, so the GEMM adds onto it (`beta = 1`) with no separate pass.
pub(crate) struct LinearOp;

fn linear_fwd(
    name: &str,
    (sx, lx): (&CpuStorage, &Layout),
    (sw, lw): (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    let (xo, wo) = (operand(lx, name)?, operand(lw, name)?);
    if lx.dims().len() != 2 || lw.dims().len() != 2 || xo.cols != wo.cols {
        bail!(
            "{name}: expected x [n, in] and w [out, in], got {:?} and {:?}",
            lx.dims(),
            lw.dims()
        )
    }
    let (n, out) = (xo.rows, wo.rows);
    let wt = wo.t();
    let bias_range = match bias {
        Some((_, lb)) => {
            let Some((s, e)) = lb.contiguous_offsets() else {
                bail!("{name}: bias must be contiguous")
            };
            if e - s != out || lb.dims().len() != 1 {
                bail!("{name}: bias {:?} must be [{out}]", lb.dims())
            }
            Some((s, e))
        }
        None => None,
    };
    fn run<T: BlasFloat>(
        x: &[T],
        xo: &Operand,
        w: &[T],
        wt: &Operand,
        bias: Option<&[T]>,
        n: usize,
        out: usize,
    ) -> Result<Vec<T>> {
        let (mut c, beta) = match bias {
            Some(b) => {
                let mut c = Vec::with_capacity(n * out);
                for _ in 0..n {
                    c.extend_from_slice(b);
                }
                (c, T::ONE)
            }
            None => (vec![T::ZERO; n * out], T::ZERO),
        };
        gemm_batched(x, xo, w, wt, beta, &mut c)?;
        Ok(c)
    }
    let storage = match (data(sx, name)?, data(sw, name)?) {
        (Data::F32(x), Data::F32(w)) => {
            let b = match (bias, bias_range) {
                (Some((sb, _)), Some((s, e))) => match data(sb, name)? {
                    Data::F32(b) => Some(&b[s..e]),
                    Data::F64(_) => bail!("{name}: bias dtype differs"),
                },
                _ => None,
            };
            CpuStorage::F32(run(x, &xo, w, &wt, b, n, out)?)
        }
        (Data::F64(x), Data::F64(w)) => {
            let b = match (bias, bias_range) {
                (Some((sb, _)), Some((s, e))) => match data(sb, name)? {
                    Data::F64(b) => Some(&b[s..e]),
                    Data::F32(_) => bail!("{name}: bias dtype differs"),
                },
                _ => None,
            };
            CpuStorage::F64(run(x, &xo, w, &wt, b, n, out)?)
        }
        _ => bail!("{name}: x and w must have the same dtype"),
    };
    Ok((storage, Shape::from((n, out))))
}

/// Gradients of `x · wᵀ`: `∂x = g · w`, `∂w = gᵀ · x`, each only if that input tracks.
fn linear_bwd(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let dx = if x.track_op() {
        Some(matmul_no_bwd(g, w)?)
    } else {
        None
    };
    let dw = if w.track_op() {
        Some(matmul_no_bwd(&g.t()?, x)?)
    } else {
        None
    };
    Ok((dx, dw))
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "vipa-linear"
    }
    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        linear_fwd("vipa-linear", (sx, lx), (sw, lw), None)
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        linear_bwd(x, w, g)
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "vipa-linear-bias"
    }
    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        linear_fwd("vipa-linear-bias", (sx, lx), (sw, lw), Some((sb, lb)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = linear_bwd(x, w, g)?;
        let db = if b.track_op() {
            Some(g.contiguous()?.apply_op1_no_bwd(&ColumnSum)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// `Σ_rows g` of a contiguous `g: [n, out]` → `[out]` (the bias gradient). candle's
/// `sum(0)` walks the strided reduction element by element; adding whole rows vectorizes.
struct ColumnSum;

fn column_sum<T: Copy + Default + std::ops::AddAssign>(g: &[T], cols: usize) -> Vec<T> {
    let mut acc = vec![T::default(); cols];
    if cols == 0 {
        return acc;
    }
    for row in g.chunks_exact(cols) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    acc
}

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "vipa-column-sum"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some((start, end)), [_, cols]) = (l.contiguous_offsets(), l.dims()) else {
            bail!("vipa-column-sum: expected a contiguous [n, out] gradient, got {l:?}")
        };
        let cols = *cols;
        let out = match data(s, self.name())? {
            Data::F32(v) => CpuStorage::F32(column_sum(&v[start..end], cols)),
            Data::F64(v) => CpuStorage::F64(column_sum(&v[start..end], cols)),
        };
        Ok((out, Shape::from(cols)))
    }
}

/// Whether the BLAS path takes this dtype.
pub(crate) fn blas_dtype(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}
