//! Gradient clipping by global norm and gradient accumulation over micro-batches.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// Scales every gradient of `vars` so that their joint L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does. Returns the norm before clipping (non-finite if any
/// gradient is). Vars without a gradient are ignored.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sum_sq = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            sum_sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = sum_sq.sqrt();
    if norm.is_finite() && max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

/// Sums the gradients of several micro-batches. Each micro-batch's loss should already be
/// divided by the number of micro-batches, so the sum is the gradient of the mean loss.
#[derive(Default)]
pub struct GradAccumulator {
    acc: Option<GradStore>,
    micro_batches: usize,
}

impl GradAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one micro-batch's gradients for `vars` (other entries of `grads`, such as
    /// activations, are dropped to free memory).
    pub fn add(&mut self, mut grads: GradStore, vars: &[Var]) -> Result<()> {
        self.micro_batches += 1;
        match &mut self.acc {
            None => {
                // Keep only the vars' gradients: the rest of the store holds activation
                // gradients that would stay alive across micro-batches. `GradStore` has no
                // public constructor, so start from the (one-entry) store of a constant.
                let device = vars.first().map(|v| v.device().clone());
                let mut store = match device {
                    Some(device) => Tensor::new(0f32, &device)?.backward()?,
                    None => return Ok(()),
                };
                for var in vars {
                    if let Some(g) = grads.remove(var.as_tensor()) {
                        store.insert(var.as_tensor(), g);
                    }
                }
                self.acc = Some(store);
            }
            Some(acc) => {
                for var in vars {
                    if let Some(g) = grads.remove(var.as_tensor()) {
                        let sum = match acc.remove(var.as_tensor()) {
                            Some(prev) => (prev + g)?,
                            None => g,
                        };
                        acc.insert(var.as_tensor(), sum);
                    }
                }
            }
        }
        Ok(())
    }

    /// Number of micro-batches added since the last [`take`](Self::take).
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// The summed gradients, resetting the accumulator.
    pub fn take(&mut self) -> Option<GradStore> {
        self.micro_batches = 0;
        self.acc.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(values: &[f32]) -> Var {
        Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap()
    }

    #[test]
    fn clipping_scales_to_max_norm_and_reports_the_original_norm() {
        let a = var(&[1.0, 2.0]);
        let b = var(&[3.0]);
        // loss = 3a₀ + 4a₁ + 12b → grads (3, 4) and (12): norm 13.
        let loss = (a
            .as_tensor()
            .mul(&Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            + (b.as_tensor() * 12.0).unwrap().sum_all().unwrap())
        .unwrap();
        let mut grads = loss.backward().unwrap();
        let vars = [a.clone(), b.clone()];
        let norm = clip_grad_norm(&mut grads, &vars, 1.3).unwrap();
        assert!((norm - 13.0).abs() < 1e-5);
        let ga = grads.get(a.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let gb = grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let clipped = (ga[0].powi(2) + ga[1].powi(2) + gb[0].powi(2)).sqrt();
        assert!((clipped - 1.3).abs() < 1e-4, "clipped norm {clipped}");
        assert!((ga[0] / ga[1] - 0.75).abs() < 1e-5, "direction kept");
    }

    #[test]
    fn clipping_leaves_small_gradients_alone() {
        let a = var(&[1.0]);
        let mut grads = (a.as_tensor() * 0.5)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let norm = clip_grad_norm(&mut grads, std::slice::from_ref(&a), 1.0).unwrap();
        assert!((norm - 0.5).abs() < 1e-6);
        assert_eq!(
            grads.get(a.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            vec![0.5]
        );
    }

    #[test]
    fn accumulation_equals_the_gradient_of_the_mean_loss() {
        let w = var(&[2.0, -1.0]);
        let xs = [[1f32, 2.0], [3.0, -4.0]];
        let mut acc = GradAccumulator::new();
        for x in &xs {
            let x = Tensor::new(x, &Device::Cpu).unwrap();
            // loss_i = (w·x)², divided by the number of micro-batches.
            let loss = (w
                .as_tensor()
                .mul(&x)
                .unwrap()
                .sum_all()
                .unwrap()
                .sqr()
                .unwrap()
                / 2.0)
                .unwrap();
            acc.add(loss.backward().unwrap(), std::slice::from_ref(&w))
                .unwrap();
        }
        assert_eq!(acc.micro_batches(), 2);
        let g = acc
            .take()
            .unwrap()
            .get(w.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // d/dw mean((w·x)²) = mean(2(w·x)x): w·x₁ = 0, w·x₂ = 10 → (0 + 2·10·(3, −4)) / 2.
        assert_eq!(g, vec![30.0, -40.0]);
        assert!(acc.take().is_none());
    }
}
