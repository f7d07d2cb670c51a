//! Deterministic random weights: a candle `VarBuilder` backend whose every tensor is drawn from
//! the module's own init hint (`Randn`, `Uniform`, `Kaiming`, constants) with a ChaCha8 stream
//! seeded by `(seed, tensor name)`.
//!
//! candle's CPU random init uses a thread-local generator that cannot be seeded, so
//! `VipaVision::random_weights` gives different weights on every run. A frozen encoder without
//! a checkpoint must give the *same* features in every process and every run (features may be
//! cached, and the trainer must see one fixed encoder), hence this backend. Every tensor is a
//! plain tensor (no `Var`): the encoder is frozen.
//!
//! The values depend only on the seed, the tensor's name and its shape, never on the order in
//! which modules ask for them.

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, init::NormalOrUniform};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// FNV-1a over the name, mixed with the seed: one independent stream per tensor.
fn stream_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

struct Seeded {
    seed: u64,
}

impl Seeded {
    fn values(&self, shape: &Shape, name: &str, init: Init) -> Result<Vec<f32>> {
        let n = shape.elem_count();
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(self.seed, name));
        let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| -> Result<Vec<f32>> {
            let d = Normal::new(mean, std.max(0.0))
                .map_err(|e| candle_core::Error::Msg(format!("init of `{name}`: {e}")))?;
            Ok((0..n).map(|_| d.sample(rng) as f32).collect())
        };
        let uniform = |rng: &mut ChaCha8Rng, lo: f64, up: f64| -> Vec<f32> {
            (0..n)
                .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
                .collect()
        };
        Ok(match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev)?,
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let fan = fan.for_shape(shape).max(1);
                let std = non_linearity.gain() / (fan as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => normal(&mut rng, 0.0, std)?,
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        uniform(&mut rng, -bound, bound)
                    }
                }
            }
        })
    }
}

impl SimpleBackend for Seeded {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let values = self.values(&s, name, h)?;
        Tensor::from_vec(values, s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "seeded random init cannot create `{name}` without a shape"
        )))
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// The deterministic init of one tensor: the values [`seeded_builder`] gives `name`.
pub fn seeded_tensor(
    seed: u64,
    shape: &Shape,
    name: &str,
    init: Init,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    Seeded { seed }.get(shape.clone(), name, init, dtype, dev)
}

/// A `VarBuilder` of frozen, deterministic random tensors.
pub fn seeded_builder(seed: u64, dev: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(Seeded { seed }), DType::F32, dev.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_hints_are_honoured() {
        let dev = Device::Cpu;
        let get = |seed: u64, name: &str, init: Init| {
            seeded_builder(seed, &dev)
                .get_with_hints((64, 32), name, init)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let randn = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let a = get(1, "w", randn);
        assert_eq!(a, get(1, "w", randn));
        assert_ne!(a, get(2, "w", randn));
        assert_ne!(a, get(1, "v", randn));
        let n = a.len() as f32;
        let mean = a.iter().sum::<f32>() / n;
        let std = (a.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt();
        assert!(
            mean.abs() < 0.003 && (std - 0.02).abs() < 0.002,
            "{mean} {std}"
        );
        assert!(get(1, "b", Init::Const(1.0)).iter().all(|&x| x == 1.0));
        let u = get(1, "u", Init::Uniform { lo: -0.5, up: 0.5 });
        assert!(u.iter().all(|x| (-0.5..0.5).contains(x)));
        assert!(u.iter().any(|&x| x > 0.4) && u.iter().any(|&x| x < -0.4));
    }
}
