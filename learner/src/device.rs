//! Choosing the training device, and the compute engine on it, at run time.
//!
//! `auto` takes a real GPU through wgpu when the build has the `wgpu` feature and one is found;
//! otherwise burn's pure-Rust `flex` CPU backend. A software or CPU wgpu adapter (Mesa lavapipe,
//! llvmpipe) never wins `auto`: here it was about 1000× slower than flex. `wgpu` forces the wgpu
//! backend on whatever adapter it finds, which is how the GPU path is tested without a GPU.

use burn::tensor::Device;
use shoal_common::config::{DeviceChoice, LearnerConfig};
use shoal_compute::{Engine, EngineError};
use thiserror::Error;

/// A device and a human description of it for the logs.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The device.
    pub device: Device,
    /// Backend and adapter, e.g. `wgpu (NVIDIA GeForce RTX 4090)` or `flex (CPU)`.
    pub description: String,
}

/// Device selection failed.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// `wgpu` was asked for but this build does not have it.
    #[error(
        "this build has no wgpu backend; rebuild with the `wgpu` feature or use device = \"flex\""
    )]
    WgpuNotBuilt,
    /// `wgpu` was asked for but no adapter works.
    #[error(
        "no usable wgpu adapter ({0}); install a GPU driver or Mesa's Vulkan drivers (Debian: mesa-vulkan-drivers), or use device = \"flex\""
    )]
    NoAdapter(String),
    /// The engine asked for does not run on the device.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The device `learner.device` picks and the engine `learner.engine` computes on it (with
/// `learner.compute_threads`).
pub fn select_engine(learner: &LearnerConfig) -> Result<(Engine, SelectedDevice), DeviceError> {
    let selected = select(learner.device)?;
    let engine = Engine::choose(learner.engine, &selected.device, learner.compute_threads)?;
    Ok((engine, selected))
}

/// Picks the training device for `choice`.
pub fn select(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    match choice {
        DeviceChoice::Flex => Ok(flex()),
        DeviceChoice::Auto => Ok(real_gpu().unwrap_or_else(flex)),
        DeviceChoice::Wgpu => forced_wgpu(),
    }
}

fn flex() -> SelectedDevice {
    SelectedDevice {
        device: Device::flex(),
        description: "flex (CPU)".into(),
    }
}

#[cfg(feature = "wgpu")]
fn real_gpu() -> Option<SelectedDevice> {
    use burn::tensor::DeviceType;
    // Enumerating opens adapters; a broken driver stack must not take the learner down.
    std::panic::catch_unwind(|| {
        Device::enumerate(DeviceType::Wgpu)
            .into_vec()
            .into_iter()
            .find_map(|device| {
                // `physical` is None for a CPU or a software rasteriser.
                let identity = device.identity()?;
                identity.physical.as_ref()?;
                Some(SelectedDevice {
                    description: format!("wgpu ({})", identity.name),
                    device,
                })
            })
    })
    .ok()
    .flatten()
}

#[cfg(not(feature = "wgpu"))]
fn real_gpu() -> Option<SelectedDevice> {
    None
}

#[cfg(feature = "wgpu")]
fn forced_wgpu() -> Result<SelectedDevice, DeviceError> {
    use burn::tensor::{DeviceKind, Tensor};
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(DeviceKind::DefaultDevice);
        // A tiny computation proves the adapter works.
        let t = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let _ = t.sum().into_data();
        let name = device
            .identity()
            .map(|i| {
                let kind = if i.physical.is_some() {
                    ""
                } else {
                    ", software"
                };
                format!("{}{kind}", i.name)
            })
            .unwrap_or_else(|| "unknown adapter".into());
        (device, name)
    });
    match probe {
        Ok((device, name)) => Ok(SelectedDevice {
            device,
            description: format!("wgpu ({name})"),
        }),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "adapter initialisation panicked".into());
            Err(DeviceError::NoAdapter(msg))
        }
    }
}

#[cfg(not(feature = "wgpu"))]
fn forced_wgpu() -> Result<SelectedDevice, DeviceError> {
    Err(DeviceError::WgpuNotBuilt)
}

/// Makes flex burn's default device unless `BURN_DEVICE` already names one. burn creates
/// optimizer state read from a checkpoint on its default device (wgpu in builds with the GPU
/// backend, which panics on a host without any Vulkan adapter) and moves it to the training
/// device on the next step, so flex is always a safe place for it; shoal passes its devices
/// explicitly everywhere else.
///
/// # Safety
/// Changes the process environment: call it before any other thread exists (first thing in
/// `main`).
#[allow(unsafe_code)]
pub unsafe fn default_device_flex() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: the caller guarantees that no other thread exists yet.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
}
