//! Gradient checks for every kernel: forward and gradients (w.r.t. every input) against
//! candle's composed, differentiable ops, plus central finite differences in f64, on odd shapes,
//! strided inputs, and f64 / f32 / bf16.

use candle_core::{D, DType, Device, IndexOp, Result, Tensor, Var};
use candle_nn::ops;

/// Deterministic uniform values in [-1, 1) (xorshift64*), independent of candle's RNG.
fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
            (r as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn rand(dims: &[usize], seed: u64, scale: f64) -> Result<Tensor> {
    let n = dims.iter().product();
    let v: Vec<f64> = uniform(n, seed).into_iter().map(|x| x * scale).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()
}

fn max_abs(a: &Tensor) -> Result<f64> {
    a.to_dtype(DType::F64)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()
}

/// How an input reaches the op: as is, transposed (last two axes) or narrowed (last axis).
#[derive(Clone, Copy, Debug)]
enum View {
    Plain,
    Transposed,
    Narrowed,
}

/// A trainable input: the `Var` that receives the gradient and the (maybe strided) view the op
/// sees, whose shape is `dims`.
struct Input {
    var: Var,
    view: Tensor,
    kind: View,
}

fn make_input(dims: &[usize], seed: u64, scale: f64, view: View, dtype: DType) -> Result<Input> {
    let r = dims.len();
    match view {
        View::Transposed if r >= 2 => {
            let mut vd = dims.to_vec();
            vd.swap(r - 1, r - 2);
            let var = Var::from_tensor(&rand(&vd, seed, scale)?.to_dtype(dtype)?)?;
            let view = var.as_tensor().transpose(r - 1, r - 2)?;
            // Swapping an axis of length 1 leaves the view contiguous; otherwise it must be strided.
            assert!(dims[r - 1] == 1 || dims[r - 2] == 1 || !view.is_contiguous());
            Ok(Input {
                var,
                view,
                kind: View::Transposed,
            })
        }
        View::Narrowed => {
            let mut vd = dims.to_vec();
            vd[r - 1] += 3;
            let var = Var::from_tensor(&rand(&vd, seed, scale)?.to_dtype(dtype)?)?;
            let view = var.as_tensor().narrow(r - 1, 1, dims[r - 1])?;
            Ok(Input {
                var,
                view,
                kind: View::Narrowed,
            })
        }
        _ => {
            let var = Var::from_tensor(&rand(dims, seed, scale)?.to_dtype(dtype)?)?;
            let view = var.as_tensor().clone();
            Ok(Input {
                var,
                view,
                kind: View::Plain,
            })
        }
    }
}

/// Tolerances: forward and gradient max-abs errors (relative to the reference's max-abs).
fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-10,
        DType::F32 => 2e-5,
        _ => 3e-2,
    }
}

type Op<'a> = dyn Fn(&[Tensor]) -> Result<Tensor> + 'a;

/// Checks `fast` against `slow` (run in f64) on inputs of `dims`: forward values, and gradients of
/// `Σ out ⊙ R` (R random) w.r.t. every input in `grad_inputs`; in f64 also against central
/// finite differences of `fast` itself.
#[allow(clippy::too_many_arguments)]
fn check(
    name: &str,
    fast: &Op<'_>,
    slow: &Op<'_>,
    dims: &[&[usize]],
    scales: &[f64],
    views: &[View],
    dtype: DType,
    grad_inputs: &[usize],
) -> Result<()> {
    let inputs: Vec<Input> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| make_input(d, 17 + 31 * i as u64, scales[i], views[i], dtype))
        .collect::<Result<_>>()?;
    let views_t: Vec<Tensor> = inputs.iter().map(|i| i.view.clone()).collect();
    let y_fast = fast(&views_t)?;
    // The reference runs the composed ops in f64 on the same (rounded) inputs, so low-precision
    // dtypes are judged against the exact result, not against the composed ops' own rounding.
    let views_64: Vec<Tensor> = views_t
        .iter()
        .map(|v| v.to_dtype(DType::F64))
        .collect::<Result<_>>()?;
    let y_slow = slow(&views_64)?;
    assert_eq!(y_fast.dtype(), dtype, "{name}: output dtype");
    let t = tol(dtype);
    let scale = max_abs(&y_slow)?.max(1.0);
    let err = max_abs_diff(&y_fast, &y_slow)?;
    assert!(
        err <= t * scale,
        "{name} {dtype:?} {views:?}: forward error {err:e} > {:e}",
        t * scale
    );

    let r = rand(y_fast.dims(), 99, 1.0)?.to_dtype(dtype)?;
    let g_fast = (&y_fast * &r)?.sum_all()?.backward()?;
    let g_slow = (&y_slow * &r.to_dtype(DType::F64)?)?
        .sum_all()?
        .backward()?;
    for &i in grad_inputs {
        let var = inputs[i].var.as_tensor();
        let gf = g_fast
            .get(var)
            .unwrap_or_else(|| panic!("{name}: no fast gradient for input {i}"));
        let gs = g_slow
            .get(var)
            .unwrap_or_else(|| panic!("{name}: no slow gradient for input {i}"));
        let scale = max_abs(gs)?.max(1.0);
        let err = max_abs_diff(gf, gs)?;
        assert!(
            err <= t * scale * 4.0,
            "{name} {dtype:?} {views:?}: gradient of input {i} error {err:e} (scale {scale:e})"
        );
        if dtype == DType::F64 {
            check_fd(name, fast, &inputs, i, &r, gf)?;
        }
    }
    Ok(())
}

/// Central finite differences of `Σ fast(inputs) ⊙ r` w.r.t. up to 24 elements of input `i`.
fn check_fd(
    name: &str,
    fast: &Op<'_>,
    inputs: &[Input],
    i: usize,
    r: &Tensor,
    grad: &Tensor,
) -> Result<()> {
    let h = 1e-6;
    let base: Vec<f64> = inputs[i].var.as_tensor().flatten_all()?.to_vec1()?;
    let grad: Vec<f64> = grad.flatten_all()?.to_vec1()?;
    let n = base.len();
    let step = (n / 24).max(1);
    let loss_at = |k: usize, delta: f64| -> Result<f64> {
        let mut v = base.clone();
        v[k] += delta;
        let moved = Tensor::from_vec(v, inputs[i].var.dims(), &Device::Cpu)?;
        // Rebuild input i's view on the perturbed storage the same way as the original view.
        let view = rebuild_view(&inputs[i], &moved)?;
        let args: Vec<Tensor> = inputs
            .iter()
            .enumerate()
            .map(|(j, inp)| {
                if j == i {
                    view.clone()
                } else {
                    inp.view.detach()
                }
            })
            .collect();
        (fast(&args)? * r)?.sum_all()?.to_scalar::<f64>()
    };
    for k in (0..n).step_by(step) {
        let fd = (loss_at(k, h)? - loss_at(k, -h)?) / (2.0 * h);
        let tol = 1e-6 * fd.abs().max(1.0);
        assert!(
            (fd - grad[k]).abs() <= tol,
            "{name}: finite difference of input {i} at {k}: fd {fd} vs analytic {}",
            grad[k]
        );
    }
    Ok(())
}

fn rebuild_view(inp: &Input, moved: &Tensor) -> Result<Tensor> {
    let vd = inp.var.dims();
    let r = vd.len();
    match inp.kind {
        View::Plain => Ok(moved.clone()),
        View::Narrowed => moved.narrow(r - 1, 1, vd[r - 1] - 3),
        View::Transposed => moved.transpose(r - 1, r - 2),
    }
}

const DTYPES: [DType; 3] = [DType::F64, DType::F32, DType::BF16];

#[test]
fn softmax_matches_composed_and_finite_differences() -> Result<()> {
    let fast = |a: &[Tensor]| vipa_kernels::softmax_last_dim(&a[0]);
    let slow = |a: &[Tensor]| ops::softmax(&a[0], D::Minus1);
    for dtype in DTYPES {
        for dims in [&[3usize, 5, 7][..], &[1, 1], &[2, 33], &[4, 1, 130]] {
            for view in [View::Plain, View::Transposed, View::Narrowed] {
                check(
                    "softmax",
                    &fast,
                    &slow,
                    &[dims],
                    &[3.0],
                    &[view],
                    dtype,
                    &[0],
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn scaled_masked_softmax_gradients_reach_scores_and_mask() -> Result<()> {
    let fast = |a: &[Tensor]| vipa_kernels::scaled_masked_softmax(&a[0], Some(&a[1]), 0.37);
    let slow = |a: &[Tensor]| ops::softmax(&(&a[0] * 0.37)?.broadcast_add(&a[1])?, D::Minus1);
    for dtype in DTYPES {
        // [q, k] mask, [b, 1, 1, k] padding-style mask (materialised), [1, 1, q, k].
        for (xd, md) in [
            (&[2usize, 3, 5, 6][..], &[5usize, 6][..]),
            (&[2, 3, 5, 6], &[2, 1, 1, 6]),
            (&[2, 3, 5, 6], &[1, 1, 5, 6]),
            (&[3, 4, 9], &[9]),
        ] {
            check(
                "masked softmax",
                &fast,
                &slow,
                &[xd, md],
                &[2.0, 1.0],
                &[View::Transposed, View::Plain],
                dtype,
                &[0, 1],
            )?;
        }
    }
    Ok(())
}

#[test]
fn masked_rows_give_zeros_not_nan() -> Result<()> {
    let x = rand(&[1, 1, 2, 3], 1, 1.0)?;
    let mask = Tensor::new(
        &[[0.0f64, f64::NEG_INFINITY, 0.0], [f64::NEG_INFINITY; 3]],
        &Device::Cpu,
    )?;
    let y = vipa_kernels::scaled_masked_softmax(&x, Some(&mask), 1.0)?;
    let row0: Vec<f64> = y.i((0, 0, 0))?.to_vec1()?;
    let row1: Vec<f64> = y.i((0, 0, 1))?.to_vec1()?;
    assert_eq!(row0[1], 0.0);
    assert!((row0[0] + row0[2] - 1.0).abs() < 1e-12);
    assert_eq!(row1, vec![0.0; 3]);
    Ok(())
}

#[test]
fn layer_norm_matches_composed_and_finite_differences() -> Result<()> {
    let fast = |a: &[Tensor]| vipa_kernels::layer_norm(&a[0], &a[1], Some(&a[2]), 1e-5);
    let slow = |a: &[Tensor]| ops::layer_norm_slow(&a[0], &a[1], &a[2], 1e-5);
    for dtype in DTYPES {
        for (xd, d) in [
            (&[3usize, 5, 7][..], 7usize),
            (&[4, 1], 1),
            (&[2, 3, 130], 130),
        ] {
            for view in [View::Plain, View::Transposed, View::Narrowed] {
                check(
                    "layer_norm",
                    &fast,
                    &slow,
                    &[xd, &[d], &[d]],
                    &[2.0, 1.0, 1.0],
                    &[view, View::Plain, View::Plain],
                    dtype,
                    &[0, 1, 2],
                )?;
            }
        }
    }
    // Without a bias: same as a zero bias.
    let fast = |a: &[Tensor]| vipa_kernels::layer_norm(&a[0], &a[1], None, 1e-5);
    let slow = |a: &[Tensor]| ops::layer_norm_slow(&a[0], &a[1], &a[1].zeros_like()?, 1e-5);
    check(
        "layer_norm/no bias",
        &fast,
        &slow,
        &[&[5, 9], &[9]],
        &[1.0, 1.0],
        &[View::Plain, View::Plain],
        DType::F64,
        &[0, 1],
    )
}

#[test]
fn rms_norm_matches_composed_and_finite_differences() -> Result<()> {
    let fast = |a: &[Tensor]| vipa_kernels::rms_norm(&a[0], &a[1], 1e-6);
    let slow = |a: &[Tensor]| ops::rms_norm_slow(&a[0], &a[1], 1e-6);
    for dtype in DTYPES {
        for (xd, d) in [
            (&[3usize, 5, 7][..], 7usize),
            (&[4, 1], 1),
            (&[2, 3, 130], 130),
        ] {
            for view in [View::Plain, View::Transposed, View::Narrowed] {
                check(
                    "rms_norm",
                    &fast,
                    &slow,
                    &[xd, &[d]],
                    &[2.0, 1.0],
                    &[view, View::Plain],
                    dtype,
                    &[0, 1],
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn rope_both_layouts_match_composed_and_finite_differences() -> Result<()> {
    type F = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;
    let pairs: [(&str, F, F); 2] = [
        ("rope", vipa_kernels::rope, candle_nn::rotary_emb::rope_slow),
        (
            "rope_i",
            vipa_kernels::rope_i,
            candle_nn::rotary_emb::rope_i_slow,
        ),
    ];
    for (name, f, s) in pairs {
        let fast = |a: &[Tensor]| f(&a[0], &a[1], &a[2]);
        let slow = |a: &[Tensor]| s(&a[0], &a[1], &a[2]);
        for dtype in DTYPES {
            for view in [View::Plain, View::Transposed, View::Narrowed] {
                // seq 5, head_dim 6; tables cover exactly the sequence (slow ops' requirement for grads).
                check(
                    name,
                    &fast,
                    &slow,
                    &[&[2, 3, 5, 6], &[5, 3], &[5, 3]],
                    &[1.0, 1.0, 1.0],
                    &[view, View::Plain, View::Plain],
                    dtype,
                    &[0, 1, 2],
                )?;
            }
        }
    }
    Ok(())
}

fn attention_slow(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let s = (q.matmul(&k.t()?)? * scale)?;
    let s = match mask {
        Some(m) => s.broadcast_add(m)?,
        None => s,
    };
    ops::softmax(&s, D::Minus1)?.matmul(v)
}

#[test]
fn attention_matches_manual_attention_and_finite_differences() -> Result<()> {
    // bf16 matmul is not supported by candle's CPU backend, so attention is checked in f64/f32.
    let fast = |a: &[Tensor]| vipa_kernels::attention(&a[0], &a[1], &a[2], None, 0.3);
    let slow = |a: &[Tensor]| attention_slow(&a[0], &a[1], &a[2], None, 0.3);
    let fast_m = |a: &[Tensor]| vipa_kernels::attention(&a[0], &a[1], &a[2], Some(&a[3]), 0.3);
    let slow_m = |a: &[Tensor]| attention_slow(&a[0], &a[1], &a[2], Some(&a[3]), 0.3);
    for dtype in [DType::F64, DType::F32] {
        for view in [View::Plain, View::Transposed, View::Narrowed] {
            let d: [&[usize]; 3] = [&[2, 3, 5, 4], &[2, 3, 7, 4], &[2, 3, 7, 3]];
            check(
                "attention",
                &fast,
                &slow,
                &d,
                &[1.0; 3],
                &[view, View::Plain, view],
                dtype,
                &[0, 1, 2],
            )?;
            let dm: [&[usize]; 4] = [&[1, 2, 5, 4], &[1, 2, 7, 4], &[1, 2, 7, 4], &[5, 7]];
            check(
                "attention/mask",
                &fast_m,
                &slow_m,
                &dm,
                &[1.0; 4],
                &[View::Plain, view, View::Plain, View::Plain],
                dtype,
                &[0, 1, 2, 3],
            )?;
        }
    }
    Ok(())
}

#[test]
fn bad_shapes_are_errors_not_panics() -> Result<()> {
    let x = rand(&[2, 3, 4, 6], 1, 1.0)?;
    let w = rand(&[5], 2, 1.0)?;
    assert!(vipa_kernels::layer_norm(&x, &w, None, 1e-5).is_err());
    assert!(vipa_kernels::rms_norm(&x, &w, 1e-5).is_err());
    let cos = rand(&[4, 2], 3, 1.0)?;
    assert!(vipa_kernels::rope(&x, &cos, &cos).is_err());
    let q = rand(&[2, 3, 4, 6], 1, 1.0)?;
    let k = rand(&[2, 3, 4, 5], 1, 1.0)?;
    assert!(vipa_kernels::attention(&q, &k, &k, None, 1.0).is_err());
    let mask = rand(&[3, 3], 1, 1.0)?;
    assert!(vipa_kernels::scaled_masked_softmax(&x, Some(&mask), 1.0).is_err());
    Ok(())
}

#[test]
fn gelu_matches_composed_and_finite_differences() -> Result<()> {
    let fast = |a: &[Tensor]| vipa_kernels::gelu(&a[0]);
    // candle's own gelu backward uses 6-digit constants (off by ~2e-7), so the reference is
    // the formula composed from exact differentiable ops.
    let slow = |a: &[Tensor]| {
        let x = &a[0];
        let u = ((x + (x.powf(3.0)? * 0.044715)?)? * (2.0 / std::f64::consts::PI).sqrt())?;
        (x * 0.5)? * (u.tanh()? + 1.0)?
    };
    for dtype in DTYPES {
        for view in [View::Plain, View::Transposed, View::Narrowed] {
            check(
                "gelu",
                &fast,
                &slow,
                &[&[3, 37, 5]],
                &[4.0],
                &[view],
                dtype,
                &[0],
            )?;
        }
    }
    Ok(())
}

#[test]
fn fused_adamw_matches_candle_adamw() -> Result<()> {
    use candle_nn::optim::{Optimizer, ParamsAdamW};
    let params = ParamsAdamW {
        lr: 0.01,
        weight_decay: 0.1,
        ..Default::default()
    };
    let init = rand(&[7, 13], 5, 1.0)?.to_dtype(DType::F32)?;
    let a = Var::from_tensor(&init)?;
    let b = Var::from_tensor(&init.copy()?)?;
    let mut ours = vipa_kernels::AdamW::new(vec![a.clone()], params.clone())?;
    let mut theirs = candle_nn::optim::AdamW::new(vec![b.clone()], params)?;
    for step in 0..4u64 {
        let target = rand(&[7, 13], 40 + step, 1.0)?.to_dtype(DType::F32)?;
        let la = (a.as_tensor() - &target)?.sqr()?.sum_all()?;
        let lb = (b.as_tensor() - &target)?.sqr()?.sum_all()?;
        ours.backward_step(&la)?;
        theirs.backward_step(&lb)?;
        let moved = max_abs_diff(a.as_tensor(), &init)?;
        assert!(moved > 1e-3, "the step must move the weights");
        let diff = max_abs_diff(a.as_tensor(), b.as_tensor())?;
        assert!(
            diff < 1e-6,
            "step {step}: fused AdamW differs from candle's by {diff:e}"
        );
    }
    Ok(())
}

fn linear_slow(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    // candle's composed ops, written independently of `vipa_kernels::linear`'s fallback:
    // broadcast the weight over x's leading axes and use the batched matmul. x is made
    // contiguous first: candle 0.11.1's batched matmul returns wrong values for a batched lhs
    // with transposed last axes against a broadcast (stride-0) rhs.
    let r = x.rank();
    let mut wd = x.dims()[..r - 2].to_vec();
    wd.extend(w.t()?.dims());
    let y = x
        .contiguous()?
        .broadcast_matmul(&w.t()?.broadcast_as(wd)?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

#[test]
fn linear_matches_composed_matmul_and_finite_differences() -> Result<()> {
    let fast_b = |a: &[Tensor]| vipa_kernels::linear(&a[0], &a[1], Some(&a[2]));
    let slow_b = |a: &[Tensor]| linear_slow(&a[0], &a[1], Some(&a[2]));
    let fast = |a: &[Tensor]| vipa_kernels::linear(&a[0], &a[1], None);
    let slow = |a: &[Tensor]| linear_slow(&a[0], &a[1], None);
    for dtype in DTYPES {
        // 2-D and 3-D (batch) inputs, odd sizes, a single row, and a 1-wide output.
        for (xd, wd) in [
            (&[7usize, 5][..], &[3usize, 5][..]),
            (&[2, 4, 5], &[6, 5]),
            (&[1, 9], &[4, 9]),
            (&[3, 2, 8], &[1, 8]),
            (&[40, 33], &[17, 33]),
        ] {
            let bd = [wd[0]];
            for xv in [View::Plain, View::Transposed, View::Narrowed] {
                for wv in [View::Plain, View::Transposed] {
                    check(
                        "linear+bias",
                        &fast_b,
                        &slow_b,
                        &[xd, wd, &bd],
                        &[1.0, 0.5, 1.0],
                        &[xv, wv, View::Plain],
                        dtype,
                        &[0, 1, 2],
                    )?;
                }
                check(
                    "linear",
                    &fast,
                    &slow,
                    &[xd, wd],
                    &[1.0, 0.5],
                    &[xv, View::Transposed],
                    dtype,
                    &[0, 1],
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn linear_gives_frozen_weights_no_gradient_and_takes_broadcast_gradients() -> Result<()> {
    let x = Var::from_tensor(&rand(&[6, 4], 5, 1.0)?.to_dtype(DType::F32)?)?;
    let w = rand(&[3, 4], 6, 1.0)?.to_dtype(DType::F32)?; // plain tensor: frozen
    let b = Var::from_tensor(&rand(&[3], 7, 1.0)?.to_dtype(DType::F32)?)?;
    // `sum_all` hands back a broadcast (stride-0) gradient: the GEMMs must still read it.
    let grads = vipa_kernels::linear(x.as_tensor(), &w, Some(b.as_tensor()))?
        .sum_all()?
        .backward()?;
    assert!(
        grads.get(&w).is_none(),
        "a frozen weight must get no gradient"
    );
    // ∂/∂x Σ(x wᵀ + b) = column sums of w for every row; ∂/∂b = number of rows.
    let want_x = w.sum_keepdim(0)?.broadcast_as((6, 4))?;
    let gx = grads.get(x.as_tensor()).expect("x gradient");
    assert!(max_abs_diff(gx, &want_x)? < 1e-5);
    let gb: Vec<f32> = grads.get(b.as_tensor()).expect("b gradient").to_vec1()?;
    assert_eq!(gb, vec![6.0; 3]);
    Ok(())
}

#[test]
fn matmul_matches_composed_matmul_and_finite_differences() -> Result<()> {
    let fast = |a: &[Tensor]| vipa_kernels::matmul(&a[0], &a[1]);
    let slow = |a: &[Tensor]| a[0].matmul(&a[1]);
    for dtype in [DType::F64, DType::F32] {
        for (ad, bd) in [
            (&[5usize, 4][..], &[4usize, 3][..]),
            (&[2, 3, 5, 4], &[2, 3, 4, 6]),
            (&[3, 1, 7], &[3, 7, 2]),
            (&[2, 33, 40], &[2, 40, 17]),
        ] {
            for (av, bv) in [
                (View::Plain, View::Plain),
                (View::Transposed, View::Plain),
                (View::Plain, View::Transposed),
                (View::Narrowed, View::Transposed),
            ] {
                check(
                    "matmul",
                    &fast,
                    &slow,
                    &[ad, bd],
                    &[1.0, 1.0],
                    &[av, bv],
                    dtype,
                    &[0, 1],
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn linear_and_matmul_shape_errors() -> Result<()> {
    let x = rand(&[2, 3, 4], 1, 1.0)?;
    let w = rand(&[5, 3], 2, 1.0)?;
    assert!(vipa_kernels::linear(&x, &w, None).is_err());
    let w = rand(&[5, 4], 2, 1.0)?;
    let b = rand(&[4], 3, 1.0)?;
    assert!(vipa_kernels::linear(&x, &w, Some(&b)).is_err());
    assert!(vipa_kernels::matmul(&x, &rand(&[2, 5, 4], 4, 1.0)?).is_err());
    assert!(vipa_kernels::matmul(&x, &rand(&[3, 4, 4], 4, 1.0)?).is_err());
    Ok(())
}

#[test]
fn log_softmax_matches_composed_and_finite_differences() -> Result<()> {
    let fast = |a: &[Tensor]| vipa_kernels::log_softmax_last_dim(&a[0]);
    let slow = |a: &[Tensor]| ops::log_softmax(&a[0], D::Minus1);
    for dtype in DTYPES {
        for dims in [&[3usize, 5, 7][..], &[1, 1], &[2, 33], &[4, 1, 130]] {
            for view in [View::Plain, View::Transposed, View::Narrowed] {
                check(
                    "log_softmax",
                    &fast,
                    &slow,
                    &[dims],
                    &[4.0],
                    &[view],
                    dtype,
                    &[0],
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn swiglu_matches_composed_and_finite_differences() -> Result<()> {
    let fast = |a: &[Tensor]| vipa_kernels::swiglu(&a[0], &a[1]);
    let slow = |a: &[Tensor]| a[0].silu()? * &a[1];
    for dtype in DTYPES {
        for dims in [&[3usize, 5, 7][..], &[1, 1], &[2, 33]] {
            for view in [View::Plain, View::Transposed, View::Narrowed] {
                check(
                    "swiglu",
                    &fast,
                    &slow,
                    &[dims, dims],
                    &[4.0, 1.0],
                    &[view, View::Plain],
                    dtype,
                    &[0, 1],
                )?;
            }
        }
    }
    let g = rand(&[2, 3], 1, 1.0)?;
    assert!(vipa_kernels::swiglu(&g, &rand(&[3, 2], 2, 1.0)?).is_err());
    Ok(())
}

#[test]
fn linear_with_few_rows_and_a_wide_output() -> Result<()> {
    // 3 rows × 16384 outputs (the shape class of an LM head), with the bias folded in and a
    // transposed weight; its backward splits the 16384-long axis over rayon tasks.
    let fast_b = |a: &[Tensor]| vipa_kernels::linear(&a[0], &a[1], Some(&a[2]));
    let slow_b = |a: &[Tensor]| linear_slow(&a[0], &a[1], Some(&a[2]));
    for dtype in [DType::F64, DType::F32] {
        for wv in [View::Plain, View::Transposed] {
            check(
                "linear wide",
                &fast_b,
                &slow_b,
                &[&[3, 64], &[16384, 64], &[16384]],
                &[1.0, 0.2, 1.0],
                &[View::Plain, wv, View::Plain],
                dtype,
                &[0, 1, 2],
            )?;
        }
    }
    Ok(())
}

fn masked_ce_slow(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let lp = ops::log_softmax(logits, D::Minus1)?;
    let nll = lp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    (nll * mask)?.sum_all()? / mask.sum_all()?.to_scalar::<f64>()?
}

#[test]
fn masked_cross_entropy_matches_composed_and_finite_differences() -> Result<()> {
    // 7 rows over a 33-token vocabulary; rows 1 and 4 are masked out, row 5 counts twice.
    let targets = Tensor::new(&[3u32, 0, 32, 7, 7, 1, 20], &Device::Cpu)?;
    let mask = |dtype: DType| {
        Tensor::new(&[1.0f64, 0.0, 1.0, 1.0, 0.0, 2.0, 1.0], &Device::Cpu)?.to_dtype(dtype)
    };
    for dtype in DTYPES {
        let (t, m) = (targets.clone(), mask(dtype)?);
        let m64 = mask(DType::F64)?;
        let fast = |a: &[Tensor]| vipa_kernels::masked_cross_entropy(&a[0], &t, &m);
        let slow = |a: &[Tensor]| masked_ce_slow(&a[0], &t, &m64);
        for view in [View::Plain, View::Transposed, View::Narrowed] {
            check(
                "masked cross-entropy",
                &fast,
                &slow,
                &[&[7, 33]],
                &[3.0],
                &[view],
                dtype,
                &[0],
            )?;
        }
    }
    // [b, seq, vocab] logits, and the errors: id outside the vocabulary, empty mask, shapes.
    let x = rand(&[2, 3, 5], 4, 1.0)?;
    let t = Tensor::new(&[[0u32, 1, 2], [3, 4, 0]], &Device::Cpu)?;
    let ones = Tensor::ones((2, 3), DType::F64, &Device::Cpu)?;
    let a = vipa_kernels::masked_cross_entropy(&x, &t, &ones)?.to_scalar::<f64>()?;
    let b = masked_ce_slow(&x.reshape((6, 5))?, &t.flatten_all()?, &ones.flatten_all()?)?
        .to_scalar::<f64>()?;
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    let bad = Tensor::new(&[[0u32, 1, 5], [3, 4, 0]], &Device::Cpu)?;
    assert!(vipa_kernels::masked_cross_entropy(&x, &bad, &ones).is_err());
    assert!(vipa_kernels::masked_cross_entropy(&x, &t, &ones.zeros_like()?).is_err());
    assert!(vipa_kernels::masked_cross_entropy(&x, &t.flatten_all()?, &ones).is_err());
    Ok(())
}
