//! Loading weights from safetensors checkpoints, frozen or trainable, with errors that name the
//! tensor and the file.
//!
//! - [`Checkpoint::open`] memory-maps one or more `.safetensors` files (e.g. the shards of
//!   `OpenGVLab/InternVL3_5-2B`) and validates their headers: a truncated or corrupt file fails
//!   here, naming the file.
//! - [`Checkpoint::frozen`] gives a `VarBuilder` of plain tensors (no gradient, no `Var`).
//! - [`trainable_builder`] gives a `VarBuilder` whose tensors are `Var`s registered in a
//!   `VarMap`: initialised from the checkpoint when it has the key, freshly initialised
//!   otherwise (new modules such as the fusion layer).
//!
//! Missing keys and shape mismatches are reported as
//! `checkpoint [files]: missing tensor `name` …` / `… tensor `name` in file has shape …`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Error, Result, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

/// Where a checkpoint's tensors live.
enum Store {
    /// A memory-mapped safetensors file.
    File(MmapedSafetensors),
    /// Tensors already in memory (random init, tests, converted weights).
    Memory(HashMap<String, Tensor>),
}

impl Store {
    fn has(&self, name: &str) -> bool {
        match self {
            Store::File(st) => st.get(name).is_ok(),
            Store::Memory(map) => map.contains_key(name),
        }
    }

    fn load(&self, name: &str, dev: &Device) -> Result<Tensor> {
        match self {
            Store::File(st) => st.load(name, dev),
            Store::Memory(map) => match map.get(name) {
                Some(t) => t.to_device(dev),
                None => Err(Error::Msg(format!("no tensor `{name}`"))),
            },
        }
    }

    fn names(&self) -> Vec<String> {
        match self {
            Store::File(st) => st.tensors().into_iter().map(|(n, _)| n).collect(),
            Store::Memory(map) => map.keys().cloned().collect(),
        }
    }
}

/// One or more safetensors files (or an in-memory tensor map), searched in order.
pub struct Checkpoint {
    files: Vec<(PathBuf, Store)>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("files", &self.paths())
            .finish()
    }
}

impl Checkpoint {
    /// Opens and validates the headers of `paths`.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::Msg(
                "checkpoint: no safetensors file given".to_string(),
            ));
        }
        let files = paths
            .iter()
            .map(|p| {
                let path = p.as_ref().to_path_buf();
                // SAFETY: the file is mapped read-only and we never write through the map; as
                // for every mmap-based loader, modifying the file on disk while it is mapped is
                // undefined behaviour, which is documented for callers of `Checkpoint::open`.
                #[allow(unsafe_code)]
                let st = unsafe { MmapedSafetensors::new(&path) }.map_err(|e| {
                    Error::Msg(format!(
                        "checkpoint {}: cannot read it as safetensors ({e}); the file may be \
                         missing, truncated or not a safetensors file",
                        path.display()
                    ))
                })?;
                Ok((path, Store::File(st)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { files })
    }

    /// Wraps in-memory tensors (plain, detached) as a checkpoint labelled `label` in errors.
    pub fn from_tensors(label: &str, tensors: HashMap<String, Tensor>) -> Self {
        Self {
            files: vec![(PathBuf::from(label), Store::Memory(tensors))],
        }
    }

    /// Puts in-memory tensors in front of this checkpoint's files: they win where both hold a
    /// name (e.g. a stage-1 checkpoint's fusion weights over a pretrained base).
    pub fn prepend_tensors(mut self, label: &str, tensors: HashMap<String, Tensor>) -> Self {
        self.files
            .insert(0, (PathBuf::from(label), Store::Memory(tensors)));
        self
    }

    /// The files, in search order.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|(p, _)| p.as_path()).collect()
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        names.join(", ")
    }

    /// Whether any file holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.files.iter().any(|(_, st)| st.has(name))
    }

    /// All tensor names in all files.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.files.iter().flat_map(|(_, st)| st.names()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Loads `name` as `dtype`, checking its shape against `expected` (if given).
    pub fn load(
        &self,
        name: &str,
        expected: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let Some((path, st)) = self.files.iter().find(|(_, st)| st.has(name)) else {
            let shape = expected
                .map(|s| format!(" (expected shape {s:?})"))
                .unwrap_or_default();
            return Err(Error::Msg(format!(
                "checkpoint {}: missing tensor `{name}`{shape}; check that the config preset \
                 matches the checkpoint",
                self.describe()
            )));
        };
        let tensor = st
            .load(name, dev)
            .map_err(|e| {
                Error::Msg(format!(
                    "checkpoint {}: cannot load tensor `{name}` ({e}); the file may be corrupt",
                    path.display()
                ))
            })?
            .to_dtype(dtype)?;
        if let Some(expected) = expected
            && tensor.shape() != expected
        {
            return Err(Error::Msg(format!(
                "checkpoint {}: tensor `{name}` has shape {:?} but the model expects {:?}; \
                     check that the config preset matches the checkpoint",
                path.display(),
                tensor.shape(),
                expected
            )));
        }
        Ok(tensor)
    }

    /// A `VarBuilder` of plain (frozen) tensors from this checkpoint.
    pub fn frozen(self: &Arc<Self>, dtype: DType, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(FrozenBackend(Arc::clone(self))),
            dtype,
            dev.clone(),
        )
    }
}

struct FrozenBackend(Arc<Checkpoint>);

impl SimpleBackend for FrozenBackend {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.load(name, Some(&s), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.load(name, None, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// Trainable tensors: every tensor requested is a `Var` in `varmap`. Its initial value comes
/// from `init` (a checkpoint) when that has the key, else from the module's init hint.
struct TrainableBackend {
    varmap: VarMap,
    init: Option<Arc<Checkpoint>>,
    /// Seed of the fresh init ([`crate::seeded`]); `None` = candle's unseeded generator.
    seed: Option<u64>,
}

impl SimpleBackend for TrainableBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let existing = self
            .varmap
            .data()
            .lock()
            .map_err(|_| Error::Msg("trainable VarMap lock poisoned".to_string()))?
            .get(name)
            .map(|v| v.as_tensor().clone());
        if let Some(t) = existing {
            if t.shape() != &s {
                return Err(Error::Msg(format!(
                    "trainable variable `{name}` has shape {:?} but the model expects {s:?}",
                    t.shape()
                )));
            }
            return Ok(t);
        }
        match &self.init {
            Some(ckpt) if ckpt.contains(name) => {
                let value = ckpt.load(name, Some(&s), dtype, dev)?;
                let var = Var::from_tensor(&value)?;
                let tensor = var.as_tensor().clone();
                self.varmap
                    .data()
                    .lock()
                    .map_err(|_| Error::Msg("trainable VarMap lock poisoned".to_string()))?
                    .insert(name.to_string(), var);
                Ok(tensor)
            }
            _ => match self.seed {
                Some(seed) => {
                    let value = crate::seeded::seeded_tensor(seed, &s, name, h, dtype, dev)?;
                    let var = Var::from_tensor(&value)?;
                    let tensor = var.as_tensor().clone();
                    self.varmap
                        .data()
                        .lock()
                        .map_err(|_| Error::Msg("trainable VarMap lock poisoned".to_string()))?
                        .insert(name.to_string(), var);
                    Ok(tensor)
                }
                None => self.varmap.get(s, name, h, dtype, dev),
            },
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let existing = self
            .varmap
            .data()
            .lock()
            .map_err(|_| Error::Msg("trainable VarMap lock poisoned".to_string()))?
            .get(name)
            .map(|v| v.as_tensor().clone());
        match (existing, &self.init) {
            (Some(t), _) => Ok(t),
            (None, Some(ckpt)) => {
                let value = ckpt.load(name, None, dtype, dev)?;
                let var = Var::from_tensor(&value)?;
                let tensor = var.as_tensor().clone();
                self.varmap
                    .data()
                    .lock()
                    .map_err(|_| Error::Msg("trainable VarMap lock poisoned".to_string()))?
                    .insert(name.to_string(), var);
                Ok(tensor)
            }
            (None, None) => Err(Error::Msg(format!(
                "trainable variable `{name}` does not exist and there is no checkpoint to load it from"
            ))),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let in_map = self
            .varmap
            .data()
            .lock()
            .map(|m| m.contains_key(name))
            .unwrap_or(false);
        in_map || self.init.as_ref().is_some_and(|c| c.contains(name))
    }
}

/// A `VarBuilder` whose tensors are `Var`s in `varmap`, initialised from `init` where it has
/// the key (fine-tuning a pretrained module) and from the module's own init otherwise.
pub fn trainable_builder(
    varmap: &VarMap,
    init: Option<Arc<Checkpoint>>,
    dtype: DType,
    dev: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(TrainableBackend {
            varmap: varmap.clone(),
            init,
            seed: None,
        }),
        dtype,
        dev.clone(),
    )
}

/// [`trainable_builder`] whose fresh tensors (those `init` lacks) come from the deterministic
/// [`crate::seeded`] init: the same seed gives the same starting weights in every run, which a
/// resumed run needs to reproduce an uninterrupted one.
pub fn trainable_builder_seeded(
    varmap: &VarMap,
    init: Option<Arc<Checkpoint>>,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(TrainableBackend {
            varmap: varmap.clone(),
            init,
            seed: Some(seed),
        }),
        dtype,
        dev.clone(),
    )
}
