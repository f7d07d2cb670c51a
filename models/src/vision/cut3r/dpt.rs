//! Cut3R's DPT head (`DPTOutputAdapter_fix` from `dust3r/heads/dpt_head.py` over CroCo's
//! `DPTOutputAdapter`, `regression` head type): four token maps are reshaped to the patch
//! grid, brought to strides 4, 8, 16 and 32 (`act_postprocess`), projected to `feature_dim`
//! (`scratch.layerN_rn`), fused coarse-to-fine by four refinement blocks that each upsample ×2
//! (bilinear, `align_corners=True`), then `head` gives `num_channels` maps at full resolution.
//!
//! Keys (under `downstream_head.dpt_self`): `act_postprocess.{0..3}.{0,1}`,
//! `scratch.layer{1..4}_rn.weight`, `scratch.refinenet{1..4}.{out_conv, resConfUnit1.conv{1,2},
//! resConfUnit2.conv{1,2}}` (refinenet4 has one input, so its `resConfUnit1` is never used and
//! not read), `head.{0,2,4}`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::vision::config::Cut3rConfig;

/// A 2D convolution with optional bias (square kernel).
#[derive(Debug, Clone)]
struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.get((c_out, c_in, k, k), "weight")?,
            bias: if bias {
                Some(vb.get(c_out, "bias")?)
            } else {
                None
            },
            stride,
            padding,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = xs.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        match &self.bias {
            Some(b) => ys.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(ys),
        }
    }
}

/// `nn.ConvTranspose2d(c, c, kernel_size=k, stride=k)` (weight `[c_in, c_out, k, k]`).
#[derive(Debug, Clone)]
struct ConvT {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
}

impl ConvT {
    fn new(c: usize, k: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            weight: vb.get((c, c, k, k), "weight")?,
            bias: vb.get(c, "bias")?,
            stride: k,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.conv_transpose2d(&self.weight, 0, 0, self.stride, 1)?
            .broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }
}

/// One `act_postprocess` stage: 1×1 projection, then resampling to its stride.
#[derive(Debug, Clone)]
enum Resample {
    Up(ConvT),
    Same,
    Down(Conv),
}

#[derive(Debug, Clone)]
struct ActPostprocess {
    proj: Conv,
    resample: Resample,
}

impl ActPostprocess {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.proj.forward(xs)?;
        match &self.resample {
            Resample::Up(t) => t.forward(&xs),
            Resample::Same => Ok(xs),
            Resample::Down(c) => c.forward(&xs),
        }
    }
}

/// `ResidualConvUnit_custom` without batch norm: `x + conv2(relu(conv1(relu(x))))`.
#[derive(Debug, Clone)]
struct ResidualConvUnit {
    conv1: Conv,
    conv2: Conv,
}

impl ResidualConvUnit {
    fn new(f: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            conv1: Conv::new(f, f, 3, 1, 1, true, vb.pp("conv1"))?,
            conv2: Conv::new(f, f, 3, 1, 1, true, vb.pp("conv2"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let out = self.conv1.forward(&xs.relu()?)?;
        let out = self.conv2.forward(&out.relu()?)?;
        out + xs
    }
}

/// `FeatureFusionBlock_custom` (width ratio 1): `(x0 + rcu1(x1))` → `rcu2` → bilinear ×2
/// (`align_corners=True`) → 1×1 `out_conv`.
#[derive(Debug, Clone)]
struct FusionBlock {
    res1: Option<ResidualConvUnit>,
    res2: ResidualConvUnit,
    out_conv: Conv,
}

impl FusionBlock {
    fn new(f: usize, with_skip: bool, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            res1: if with_skip {
                Some(ResidualConvUnit::new(f, vb.pp("resConfUnit1"))?)
            } else {
                None
            },
            res2: ResidualConvUnit::new(f, vb.pp("resConfUnit2"))?,
            out_conv: Conv::new(f, f, 1, 1, 0, true, vb.pp("out_conv"))?,
        })
    }

    fn forward(&self, xs: &Tensor, skip: Option<&Tensor>) -> Result<Tensor> {
        let out = match (&self.res1, skip) {
            (Some(r), Some(s)) => (xs + r.forward(s)?)?,
            _ => xs.clone(),
        };
        let out = self.res2.forward(&out)?;
        self.out_conv.forward(&upsample2x_align_corners(&out)?)
    }
}

/// Interpolation matrix `[2·n, n]` of 1D linear upsampling ×2 with `align_corners=True`
/// (PyTorch: source `i·(n−1)/(2n−1)`, neighbours `⌊src⌋` and `min(⌊src⌋ + 1, n − 1)`).
fn interp_matrix(n: usize, dev: &candle_core::Device) -> Result<Tensor> {
    let out = 2 * n;
    let scale = if out > 1 {
        (n as f32 - 1.0) / (out as f32 - 1.0)
    } else {
        0.0
    };
    let mut m = vec![0f32; out * n];
    for i in 0..out {
        let src = scale * i as f32;
        let i0 = (src.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        let l1 = src - i0 as f32;
        m[i * n + i0] += 1.0 - l1;
        m[i * n + i1] += l1;
    }
    Tensor::from_vec(m, (out, n), dev)
}

/// Bilinear ×2 upsampling with `align_corners=True`: `f32[b, c, h, w]` → `f32[b, c, 2h, 2w]`,
/// as two interpolation matmuls (same on every device).
fn upsample2x_align_corners(xs: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    let dev = xs.device();
    let mh = interp_matrix(h, dev)?.to_dtype(xs.dtype())?; // [2h, h]
    let mw = interp_matrix(w, dev)?.to_dtype(xs.dtype())?; // [2w, w]
    let xs = xs.broadcast_matmul(&mw.t()?)?; // [b, c, h, 2w]
    mh.broadcast_matmul(&xs)
}

/// The DPT head.
#[derive(Debug, Clone)]
pub(super) struct Dpt {
    act: Vec<ActPostprocess>,
    layer_rn: Vec<Conv>,
    refinenet: Vec<FusionBlock>,
    head0: Conv,
    head2: Conv,
    head4: Conv,
}

impl Dpt {
    /// Hook widths `[enc, dec, dec, dec]` (upstream `dim_tokens`), `num_channels` outputs.
    pub(super) fn new(cfg: &Cut3rConfig, num_channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let dims_in = [
            cfg.enc_embed_dim,
            cfg.dec_embed_dim,
            cfg.dec_embed_dim,
            cfg.dec_embed_dim,
        ];
        let ld = cfg.dpt_layer_dims;
        let f = cfg.dpt_feature_dim;
        let act_vb = vb.pp("act_postprocess");
        let mut act = Vec::with_capacity(4);
        for i in 0..4 {
            let v = act_vb.pp(i);
            let proj = Conv::new(dims_in[i], ld[i], 1, 1, 0, true, v.pp(0))?;
            let resample = match i {
                0 => Resample::Up(ConvT::new(ld[0], 4, v.pp(1))?),
                1 => Resample::Up(ConvT::new(ld[1], 2, v.pp(1))?),
                2 => Resample::Same,
                _ => Resample::Down(Conv::new(ld[3], ld[3], 3, 2, 1, true, v.pp(1))?),
            };
            act.push(ActPostprocess { proj, resample });
        }
        let scratch = vb.pp("scratch");
        let layer_rn = (0..4)
            .map(|i| {
                Conv::new(
                    ld[i],
                    f,
                    3,
                    1,
                    1,
                    false,
                    scratch.pp(format!("layer{}_rn", i + 1)),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let refinenet = (0..4)
            .map(|i| FusionBlock::new(f, i < 3, scratch.pp(format!("refinenet{}", i + 1))))
            .collect::<Result<Vec<_>>>()?;
        let head = vb.pp("head");
        Ok(Self {
            act,
            layer_rn,
            refinenet,
            head0: Conv::new(f, f / 2, 3, 1, 1, true, head.pp(0))?,
            head2: Conv::new(f / 2, cfg.dpt_last_dim, 3, 1, 1, true, head.pp(2))?,
            head4: Conv::new(cfg.dpt_last_dim, num_channels, 1, 1, 0, true, head.pp(4))?,
        })
    }

    /// `hooks[i]: f32[b, gh·gw, c_i]` (patch tokens only) → `f32[b, num_channels, 16·gh, 16·gw]`.
    pub(super) fn forward(&self, hooks: [&Tensor; 4], grid: (usize, usize)) -> Result<Tensor> {
        let (gh, gw) = grid;
        let mut layers = Vec::with_capacity(4);
        for (i, h) in hooks.iter().enumerate() {
            let (b, _, c) = h.dims3()?;
            // "b (nh nw) c -> b c nh nw"
            let x = h.transpose(1, 2)?.reshape((b, c, gh, gw))?;
            let x = self.act[i].forward(&x)?;
            layers.push(self.layer_rn[i].forward(&x)?);
        }
        let (h2, w2) = (layers[2].dim(2)?, layers[2].dim(3)?);
        // The stride-32 path is upsampled to an even size; crop it to the stride-16 grid.
        let path4 = self.refinenet[3]
            .forward(&layers[3], None)?
            .narrow(2, 0, h2)?
            .narrow(3, 0, w2)?;
        let path3 = self.refinenet[2].forward(&path4, Some(&layers[2]))?;
        let path2 = self.refinenet[1].forward(&path3, Some(&layers[1]))?;
        let path1 = self.refinenet[0].forward(&path2, Some(&layers[0]))?;
        let out = self.head0.forward(&path1)?;
        let out = upsample2x_align_corners(&out)?;
        let out = self.head2.forward(&out)?.relu()?;
        self.head4.forward(&out)
    }
}
