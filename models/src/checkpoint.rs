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
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Error, Result, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

use crate::hf_internvl::{Alias, aliases, is_transformers_naming};

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
    /// Upstream name → source, for files in the transformers-native InternVL naming
    /// ([`crate::hf_internvl`]); empty otherwise.
    aliases: HashMap<String, Alias>,
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
        let mut ckpt = Self {
            files,
            aliases: HashMap::new(),
        };
        let names = ckpt.names();
        if is_transformers_naming(&names) {
            ckpt.aliases = aliases(&names);
        }
        Ok(ckpt)
    }

    /// Whether the files are in the transformers-native InternVL naming (read through
    /// [`crate::hf_internvl`]'s aliases).
    pub fn is_transformers_naming(&self) -> bool {
        !self.aliases.is_empty()
    }

    /// Wraps in-memory tensors (plain, detached) as a checkpoint labelled `label` in errors.
    pub fn from_tensors(label: &str, tensors: HashMap<String, Tensor>) -> Self {
        Self {
            files: vec![(PathBuf::from(label), Store::Memory(tensors))],
            aliases: HashMap::new(),
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

    /// The files (or in-memory labels), in search order, joined for messages.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        names.join(", ")
    }

    /// Whether any file holds `name` (under its own name or, in a transformers-named file,
    /// an alias's).
    pub fn contains(&self, name: &str) -> bool {
        self.files.iter().any(|(_, st)| st.has(name))
            || self.aliases.get(name).is_some_and(|a| {
                a.sources()
                    .iter()
                    .all(|n| self.files.iter().any(|(_, st)| st.has(n)))
            })
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
        if !self.files.iter().any(|(_, st)| st.has(name))
            && let Some(alias) = self.aliases.get(name)
        {
            return self.load_alias(name, alias, expected, dtype, dev);
        }
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

    /// Loads an upstream-named tensor from its transformers-named sources (concatenated along
    /// dimension 0 where there are several), with the shape check of [`Self::load`].
    fn load_alias(
        &self,
        name: &str,
        alias: &Alias,
        expected: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let parts = alias
            .sources()
            .iter()
            .map(|src| self.load(src, None, dtype, dev))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| Error::Msg(format!("`{name}` (transformers naming): {e}")))?;
        let tensor = match parts.as_slice() {
            [one] => one.clone(),
            many => Tensor::cat(many, 0)?,
        };
        if let Some(expected) = expected
            && tensor.shape() != expected
        {
            return Err(Error::Msg(format!(
                "checkpoint {}: `{name}` (from {}) has shape {:?} but the model expects {:?}; \
                 check that the config matches the checkpoint",
                self.describe(),
                alias.sources().join(" + "),
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

/// What a trainable builder does with a tensor that its init checkpoint lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshInit {
    /// The module's own init hint, from candle's (unseeded) generator.
    Unseeded,
    /// The deterministic init of [`crate::seeded`] with this seed.
    Seeded(u64),
    /// None: the tensor must come from the checkpoint. A missing one is recorded in the
    /// [`InitLog`] (every name, not only the first) and [`InitLog::check`] fails.
    Refused,
}

/// Where the tensors of a model being built came from: the names initialised at random
/// (allowed by [`FreshInit`]) and the names a checkpoint had to hold but did not. Clones share
/// one record, so one log can follow every builder of a model.
#[derive(Debug, Clone, Default)]
pub struct InitLog(Arc<Mutex<InitRecords>>);

#[derive(Debug, Default)]
struct InitRecords {
    fresh: Vec<String>,
    missing: Vec<String>,
}

impl InitLog {
    fn with<T>(&self, f: impl FnOnce(&mut InitRecords) -> T) -> T {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Names initialised at random, in the order built.
    pub fn fresh(&self) -> Vec<String> {
        self.with(|r| r.fresh.clone())
    }

    /// Names that had to come from a checkpoint and were not in it.
    pub fn missing(&self) -> Vec<String> {
        self.with(|r| r.missing.clone())
    }

    /// How many tensors of each parameter group were initialised at random (names outside
    /// every group count under their first path segment).
    pub fn fresh_by_group(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for name in self.fresh() {
            let group = match crate::stage::ParamGroup::of(&name) {
                Some(g) => g.prefix().trim_end_matches('.').to_owned(),
                None => name.split('.').next().unwrap_or_default().to_owned(),
            };
            match counts.iter_mut().find(|(g, _)| *g == group) {
                Some((_, n)) => *n += 1,
                None => counts.push((group, 1)),
            }
        }
        counts
    }

    /// Fails, naming every missing tensor (the first 12 and a count), when a checkpoint lacked
    /// a tensor that had to come from it. `source` says what should have held them.
    pub fn check(&self, source: &str) -> Result<()> {
        let missing = self.missing();
        if missing.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 12;
        let mut list = missing
            .iter()
            .take(SHOWN)
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if missing.len() > SHOWN {
            list.push_str(&format!(" and {} more", missing.len() - SHOWN));
        }
        Err(Error::Msg(format!(
            "{source} lacks {} tensor(s) the model needs: {list}; they are not initialised at \
             random: give a checkpoint that holds them (same preset, same parameter names)",
            missing.len()
        )))
    }
}

/// Trainable tensors: every tensor requested is a `Var` in `varmap`. Its initial value comes
/// from `init` (a checkpoint) when that has the key, else as `fresh` says.
struct TrainableBackend {
    varmap: VarMap,
    init: Option<Arc<Checkpoint>>,
    fresh: FreshInit,
    log: InitLog,
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
            _ => match self.fresh {
                FreshInit::Seeded(seed) => {
                    let value = crate::seeded::seeded_tensor(seed, &s, name, h, dtype, dev)?;
                    let var = Var::from_tensor(&value)?;
                    let tensor = var.as_tensor().clone();
                    self.varmap
                        .data()
                        .lock()
                        .map_err(|_| Error::Msg("trainable VarMap lock poisoned".to_string()))?
                        .insert(name.to_string(), var);
                    self.log.with(|r| r.fresh.push(name.to_string()));
                    Ok(tensor)
                }
                FreshInit::Unseeded => {
                    self.log.with(|r| r.fresh.push(name.to_string()));
                    self.varmap.get(s, name, h, dtype, dev)
                }
                FreshInit::Refused => {
                    // A placeholder so that building goes on and every missing name is
                    // collected; `InitLog::check` then fails and the model is dropped.
                    self.log.with(|r| r.missing.push(name.to_string()));
                    Tensor::zeros(s, dtype, dev)
                }
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
    trainable_builder_with(
        varmap,
        init,
        FreshInit::Unseeded,
        &InitLog::default(),
        dtype,
        dev,
    )
}

/// [`trainable_builder`] with the choice for tensors `init` lacks ([`FreshInit`]) and a log of
/// what was initialised at random or found missing (check it with [`InitLog::check`] once the
/// model is built).
pub fn trainable_builder_with(
    varmap: &VarMap,
    init: Option<Arc<Checkpoint>>,
    fresh: FreshInit,
    log: &InitLog,
    dtype: DType,
    dev: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(TrainableBackend {
            varmap: varmap.clone(),
            init,
            fresh,
            log: log.clone(),
        }),
        dtype,
        dev.clone(),
    )
}
