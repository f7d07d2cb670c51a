//! The one place with `unsafe` in this crate: a minimal FFI binding to the system OpenBLAS
//! (`cblas_sgemm`, `cblas_dgemm`, `openblas_set_num_threads`, `openblas_get_corename`), behind
//! the `blas` feature. `build.rs` links `libopenblas`.
//!
//! Everything outside this module stays safe: [`MatRef`] describes a strided matrix over a
//! borrowed slice, and [`BlasFloat::gemm`] checks every dimension, leading dimension and slice
//! length against what BLAS will touch before it calls into C, so a bad layout is an error,
//! never an out-of-bounds read or write.
//!
//! **Threads.** OpenBLAS is switched to one thread; the callers split the output rows over
//! rayon instead (see `gemm.rs`). OpenBLAS's own pthread pool busy-waits after every call, and
//! on a 2-core machine that spinning competes with candle's rayon pool (and gemm's) for the same
//! cores; with one thread there is only ever one pool (rayon's) running.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::sync::Once;

use candle_core::{Result, bail};

const CBLAS_ROW_MAJOR: c_int = 101;
const CBLAS_NO_TRANS: c_int = 111;
const CBLAS_TRANS: c_int = 112;

unsafe extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn cblas_sgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    #[allow(clippy::too_many_arguments)]
    fn cblas_dgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        b: *const f64,
        ldb: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    );
    fn openblas_set_num_threads(n: c_int);
    fn openblas_get_corename() -> *const c_char;
}

static SINGLE_THREAD: Once = Once::new();

/// Puts OpenBLAS in single-threaded mode (once per process); see the module docs.
fn single_threaded() {
    SINGLE_THREAD.call_once(|| {
        // SAFETY: `openblas_set_num_threads` takes a plain int and only stores it (and resizes
        // its idle pool); `Once` makes this the only call, before any GEMM of ours runs.
        unsafe { openblas_set_num_threads(1) }
    });
}

/// The CPU kernel family OpenBLAS picked at load time (e.g. `Haswell`, `SkylakeX`, `Zen`).
pub fn core_name() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string owned by OpenBLAS (or NULL,
    // checked); it is only read, never freed.
    let ptr = unsafe { openblas_get_corename() };
    if ptr.is_null() {
        return "unknown".into();
    }
    // SAFETY: non-null, NUL-terminated, static lifetime (see above).
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// A logical `rows × cols` matrix over a borrowed slice: element `(i, j)` lives at
/// `data[i·ld + j]`, or at `data[j·ld + i]` when `trans` (the slice holds the transpose).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
    pub trans: bool,
}

impl<'a, T> MatRef<'a, T> {
    /// Elements of `data` that BLAS reads: the last element's index + 1.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        if self.trans {
            (self.cols - 1) * self.ld + self.rows
        } else {
            (self.rows - 1) * self.ld + self.cols
        }
    }

    /// Whether `ld` satisfies BLAS's rule (at least the stored row length, at least 1).
    fn ld_ok(&self) -> bool {
        let stored_row = if self.trans { self.rows } else { self.cols };
        self.ld >= stored_row.max(1)
    }

    /// Rows `r0..r1` of the logical matrix.
    pub fn rows_range(&self, r0: usize, r1: usize) -> MatRef<'a, T> {
        let offset = if r0 >= self.rows {
            0
        } else if self.trans {
            r0
        } else {
            r0 * self.ld
        };
        MatRef {
            data: self.data.get(offset..).unwrap_or(&[]),
            rows: r1.min(self.rows).saturating_sub(r0),
            ..*self
        }
    }
}

/// A float type OpenBLAS multiplies (f32 via `sgemm`, f64 via `dgemm`).
pub(crate) trait BlasFloat: Copy + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;

    /// `c ← a · b + beta · c` with `c` row-major `[a.rows, b.cols]`, row stride `ldc`.
    /// Single-threaded; checks every bound first.
    fn gemm(
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        beta: Self,
        c: &mut [Self],
        ldc: usize,
    ) -> Result<()>;
}

/// Checks the shapes and bounds of one GEMM; returns `(m, n, k)` as C ints.
fn check<T>(
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c_len: usize,
    ldc: usize,
) -> Result<(c_int, c_int, c_int)> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        bail!("gemm: inner dimensions differ ({m}×{k} · {}×{n})", b.rows)
    }
    if !a.ld_ok() || !b.ld_ok() || ldc < n.max(1) {
        bail!(
            "gemm: leading dimension too small (lda {}, ldb {}, ldc {ldc})",
            a.ld,
            b.ld
        )
    }
    if a.extent() > a.data.len() || b.extent() > b.data.len() {
        bail!("gemm: operand slice shorter than its layout")
    }
    if m > 0 && n > 0 && (m - 1) * ldc + n > c_len {
        bail!("gemm: output slice shorter than {m}×{n} with row stride {ldc}")
    }
    let int = |v: usize| -> Result<c_int> {
        c_int::try_from(v)
            .map_err(|_| candle_core::Error::Msg(format!("gemm: {v} exceeds BLAS int")))
    };
    int(a.ld)?;
    int(b.ld)?;
    int(ldc)?;
    Ok((int(m)?, int(n)?, int(k)?))
}

fn trans_flag<T>(m: &MatRef<'_, T>) -> c_int {
    if m.trans { CBLAS_TRANS } else { CBLAS_NO_TRANS }
}

/// `k = 0`: BLAS would only scale `c`; do it here so empty operands never reach C.
fn scale_only<T: Copy + std::ops::Mul<Output = T>>(
    c: &mut [T],
    m: usize,
    n: usize,
    ldc: usize,
    beta: T,
    zero: T,
    is_zero: bool,
) {
    for r in 0..m {
        for v in &mut c[r * ldc..r * ldc + n] {
            *v = if is_zero { zero } else { *v * beta };
        }
    }
}

macro_rules! impl_blas_float {
    ($t:ty, $f:ident) => {
        impl BlasFloat for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;

            fn gemm(
                a: MatRef<'_, Self>,
                b: MatRef<'_, Self>,
                beta: Self,
                c: &mut [Self],
                ldc: usize,
            ) -> Result<()> {
                let (m, n, k) = check(&a, &b, c.len(), ldc)?;
                if m == 0 || n == 0 {
                    return Ok(());
                }
                if k == 0 {
                    scale_only(c, a.rows, b.cols, ldc, beta, 0.0, beta == 0.0);
                    return Ok(());
                }
                single_threaded();
                // SAFETY: `check` verified that BLAS's reads of `a` and `b` (extent from
                // rows, cols, ld and transposition) stay inside their slices, that the
                // `m × n` writes with row stride `ldc` stay inside `c`, that every leading
                // dimension meets BLAS's minimum, and that all sizes fit a C int. `c` is a
                // unique borrow, so nothing else reads or writes it during the call; `a`
                // and `b` are shared borrows that outlive it.
                unsafe {
                    $f(
                        CBLAS_ROW_MAJOR,
                        trans_flag(&a),
                        trans_flag(&b),
                        m,
                        n,
                        k,
                        1.0,
                        a.data.as_ptr(),
                        a.ld as c_int,
                        b.data.as_ptr(),
                        b.ld as c_int,
                        beta,
                        c.as_mut_ptr(),
                        ldc as c_int,
                    )
                };
                Ok(())
            }
        }
    };
}

impl_blas_float!(f32, cblas_sgemm);
impl_blas_float!(f64, cblas_dgemm);
