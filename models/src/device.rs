//! Which device a node computes on: `device: auto | cpu | cuda` in every compute node's config
//! (encoder-2d, encoder-3d, lift-depth's model backends, the trainer).
//!
//! - `auto` (the default): GPU 0 when the binary was built with the `cuda` feature and a GPU
//!   answers, else the CPU. A CPU build therefore behaves exactly as `cpu`, and a CUDA build
//!   uses the GPU without touching the graphs.
//! - `cpu`: always the CPU.
//! - `cuda`: GPU 0, or an error that says why not (built without `cuda`, or no usable GPU).
//!
//! Nodes log [`describe`] of the device they got, so a run on the wrong one is visible.

use candle_core::Device;
use serde::{Deserialize, Serialize};

/// The `device:` key of a node config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// Why `device: cuda` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "`device: cuda`, but this binary was built without the `cuda` feature: rebuild the node \
         with `--features cuda` (see README, \"GPU\"), or set `device: cpu` / `auto`"
    )]
    NotBuilt,
    #[error(
        "`device: cuda`: GPU 0 is not usable ({0}); check `nvidia-smi` and the driver, or set \
         `device: cpu` / `auto`"
    )]
    Unavailable(String),
}

impl DeviceChoice {
    /// The device this choice names on this machine, with this build.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda if !cfg!(feature = "cuda") => Err(DeviceError::NotBuilt),
            Self::Cuda => Device::new_cuda(0).map_err(|e| DeviceError::Unavailable(e.to_string())),
            Self::Auto if cfg!(feature = "cuda") => Ok(Device::new_cuda(0).unwrap_or(Device::Cpu)),
            Self::Auto => Ok(Device::Cpu),
        }
    }
}

/// The device for tests that run on either: `VIPA_TEST_DEVICE=cuda` is GPU 0 (a test run on a
/// GPU machine with a `--features cuda` build; it panics when that is not usable), anything
/// else the CPU.
pub fn test_device() -> Device {
    match std::env::var("VIPA_TEST_DEVICE").as_deref() {
        Ok("cuda") => DeviceChoice::Cuda
            .resolve()
            .unwrap_or_else(|e| panic!("VIPA_TEST_DEVICE=cuda: {e}")),
        _ => Device::Cpu,
    }
}

/// `cpu`, `cuda:0`, … for logs and run summaries.
pub fn describe(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        let c: DeviceChoice = serde_json::from_str("\"auto\"").unwrap();
        assert_eq!(c, DeviceChoice::Auto);
        assert!(serde_json::from_str::<DeviceChoice>("\"tpu\"").is_err());
        assert!(DeviceChoice::Cpu.resolve().unwrap().is_cpu());
        // Without the feature, `auto` is the CPU and `cuda` a clear error.
        #[cfg(not(feature = "cuda"))]
        {
            assert!(DeviceChoice::Auto.resolve().unwrap().is_cpu());
            let err = DeviceChoice::Cuda.resolve().unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        assert_eq!(describe(&Device::Cpu), "cpu");
    }
}
