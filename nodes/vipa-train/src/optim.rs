//! AdamW (decoupled weight decay, Loshchilov & Hutter) whose state can be checkpointed by
//! parameter name, so a resumed run continues with the same moments.
//!
//! The update for a parameter `p` with gradient `g` at step `t` (1-based):
//! `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`,
//! `p ← p − lr·(m/(1−β1ᵗ) / (√(v/(1−β2ᵗ)) + ε) + wd·p)`,
//! the form of `torch.optim.AdamW`. Weight decay is skipped for 1-D tensors (biases, norm
//! weights, the fusion α), as Hugging Face's Trainer does.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// Hyper-parameters (the learning rate is passed per step: it follows the schedule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// AdamW over named variables.
pub struct AdamW {
    params: AdamWParams,
    vars: Vec<(String, Var)>,
    m: HashMap<String, Tensor>,
    v: HashMap<String, Tensor>,
    /// Updates applied so far.
    t: u64,
    /// Learning-rate factors by parameter-name prefix (first match wins; default 1).
    lr_scales: Vec<(String, f64)>,
}

impl AdamW {
    /// Fresh state (zero moments) for `vars`.
    pub fn new(vars: Vec<(String, Var)>, params: AdamWParams) -> Self {
        Self {
            params,
            vars,
            m: HashMap::new(),
            v: HashMap::new(),
            t: 0,
            lr_scales: Vec::new(),
        }
    }

    /// Parameters whose name starts with `prefix` get `scale × lr` (e.g. a pretrained LLM
    /// fine-tuned more gently than a projector that starts random).
    pub fn set_lr_scale(&mut self, prefix: &str, scale: f64) {
        self.lr_scales.push((prefix.to_owned(), scale));
    }

    fn lr_of(&self, name: &str, lr: f64) -> f64 {
        self.lr_scales
            .iter()
            .find(|(p, _)| name.starts_with(p.as_str()))
            .map_or(lr, |(_, s)| lr * s)
    }

    /// Updates applied so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The variables, by name.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Applies one update with learning rate `lr`. Vars without a gradient are left alone
    /// (e.g. the fusion layer when no 3D tokens arrive) and their moments do not decay.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let p = self.params;
        let t = self.t as i32;
        let bc1 = 1.0 - p.beta1.powi(t);
        let bc2 = 1.0 - p.beta2.powi(t);
        for (name, var) in &self.vars {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let m = match self.m.get(name) {
                Some(m) => ((m * p.beta1)? + (g * (1.0 - p.beta1))?)?,
                None => (g * (1.0 - p.beta1))?,
            };
            let v = match self.v.get(name) {
                Some(v) => ((v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?,
                None => (g.sqr()? * (1.0 - p.beta2))?,
            };
            let m_hat = (&m / bc1)?;
            let v_hat = (&v / bc2)?;
            let mut update = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            let value = var.as_tensor();
            if p.weight_decay > 0.0 && value.rank() > 1 {
                update = (update + (value * p.weight_decay)?)?;
            }
            var.set(&(value - (update * self.lr_of(name, lr))?)?)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
        }
        Ok(())
    }

    /// The state as named tensors (`m.<name>`, `v.<name>`, and `t` as a 1-element tensor).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (name, _) in &self.vars {
            if let Some(m) = self.m.get(name) {
                out.insert(format!("m.{name}"), m.clone());
            }
            if let Some(v) = self.v.get(name) {
                out.insert(format!("v.{name}"), v.clone());
            }
        }
        let dev = self
            .vars
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        out.insert("t".into(), Tensor::new(&[self.t as f64], &dev)?);
        Ok(out)
    }

    /// Restores [`Self::state`]. Moments of unknown variables are an error (a checkpoint of
    /// another model); variables without saved moments start from zero.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let known: HashMap<&str, &Var> = self.vars.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut names: Vec<&String> = state.keys().collect();
        names.sort();
        for key in names {
            let value = &state[key];
            if key == "t" {
                let t = value.flatten_all()?.to_vec1::<f64>()?;
                self.t = t.first().copied().unwrap_or(0.0) as u64;
                continue;
            }
            let (kind, name) = key.split_once('.').ok_or_else(|| {
                candle_core::Error::Msg(format!("optimizer state: unexpected entry `{key}`"))
            })?;
            let var = known.get(name).ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "optimizer state has moments for `{name}`, which is not a trainable \
                     variable of this model (a checkpoint of another preset or stage?)"
                ))
            })?;
            if value.shape() != var.shape() {
                return Err(candle_core::Error::Msg(format!(
                    "optimizer state `{key}` has shape {:?}, the variable {:?}",
                    value.shape(),
                    var.shape()
                )));
            }
            let value = value.to_device(var.device())?;
            match kind {
                "m" => self.m.insert(name.to_owned(), value),
                "v" => self.v.insert(name.to_owned(), value),
                _ => {
                    return Err(candle_core::Error::Msg(format!(
                        "optimizer state: unexpected entry `{key}`"
                    )));
                }
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn params(wd: f64) -> AdamWParams {
        AdamWParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
        }
    }

    /// Scalar AdamW by hand, as torch.optim.AdamW computes it.
    fn reference(p0: f64, grads: &[f64], lr: f64, wd: f64) -> f64 {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (i, g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let upd = (m / (1.0 - b1.powi(t))) / ((v / (1.0 - b2.powi(t))).sqrt() + eps);
            p -= lr * (upd + wd * p);
        }
        p
    }

    #[test]
    fn matches_hand_computed_adamw_and_resumes_exactly() {
        let dev = Device::Cpu;
        let grads_seq = [0.5f64, -0.25, 1.0, 0.125];
        let run = |split: Option<usize>| -> f64 {
            let w = Var::new(&[[1.0f32, 2.0], [3.0, 4.0]], &dev).unwrap();
            let mut opt = AdamW::new(vec![("w".into(), w.clone())], params(0.1));
            for (i, g) in grads_seq.iter().enumerate() {
                if split == Some(i) {
                    let state = opt.state().unwrap();
                    opt = AdamW::new(vec![("w".into(), w.clone())], params(0.1));
                    opt.load_state(&state).unwrap();
                }
                let loss = (w.as_tensor() * *g).unwrap().sum_all().unwrap();
                let store = loss.backward().unwrap();
                opt.step(&store, 0.01).unwrap();
            }
            w.as_tensor().to_vec2::<f32>().unwrap()[0][1] as f64
        };
        let want = reference(2.0, &grads_seq, 0.01, 0.1);
        let got = run(None);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(got, run(Some(2)), "state round trip changes nothing");
    }

    #[test]
    fn lr_scale_applies_by_name_prefix() {
        let dev = Device::Cpu;
        let grads_seq = [0.5f64, -0.25];
        let a = Var::new(&[[2.0f32, 2.0]], &dev).unwrap();
        let b = Var::new(&[[2.0f32, 2.0]], &dev).unwrap();
        let mut opt = AdamW::new(
            vec![
                ("language_model.w".into(), a.clone()),
                ("mlp1.w".into(), b.clone()),
            ],
            params(0.1),
        );
        opt.set_lr_scale("language_model.", 0.1);
        for g in grads_seq {
            let loss = ((a.as_tensor() + b.as_tensor()).unwrap() * g)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap(), 0.01).unwrap();
        }
        let got = |v: &Var| f64::from(v.as_tensor().to_vec2::<f32>().unwrap()[0][0]);
        assert!((got(&a) - reference(2.0, &grads_seq, 0.001, 0.1)).abs() < 1e-6);
        assert!((got(&b) - reference(2.0, &grads_seq, 0.01, 0.1)).abs() < 1e-6);
    }

    #[test]
    fn no_decay_on_vectors_and_foreign_state_is_refused() {
        let dev = Device::Cpu;
        let b = Var::new(&[1.0f32, 1.0], &dev).unwrap();
        let mut opt = AdamW::new(vec![("b".into(), b.clone())], params(0.5));
        let store = (b.as_tensor() * 0.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step(&store, 0.1).unwrap();
        assert_eq!(b.as_tensor().to_vec1::<f32>().unwrap(), vec![1.0, 1.0]);
        let mut state = opt.state().unwrap();
        state.insert(
            "m.other".into(),
            Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap(),
        );
        let err = opt.load_state(&state).unwrap_err();
        assert!(err.to_string().contains("other"), "{err}");
    }
}
