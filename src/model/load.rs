//! Weights from PyTorch checkpoints (`.pt`/`.pth`, zip format, read without
//! Python) and safetensors files, with torchvision names mapped onto ours.
//!
//! Checkpoints come as a bare state_dict, nested under `model_state_dict` or
//! `state_dict` (training scripts), and with DataParallel's `module.` prefix.
//! Anything missing, left over or of the wrong shape is an error that lists
//! the keys with both shapes, never a silently half-loaded net.

use std::path::Path;

use burn::store::{
    ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use super::alexnet::AlexNet;
use crate::error::{Error, Result};

/// torchvision module → our field.
const RENAMES: [(&str, &str); 8] = [
    (r"^features\.0\.", "conv1."),
    (r"^features\.3\.", "conv2."),
    (r"^features\.6\.", "conv3."),
    (r"^features\.8\.", "conv4."),
    (r"^features\.10\.", "conv5."),
    (r"^classifier\.1\.", "fc1."),
    (r"^classifier\.4\.", "fc2."),
    (r"^classifier\.6\.", "fc3."),
];

/// The same table the other way round (our field → torchvision module), for
/// writing weights PyTorch can load.
pub fn export_remaps() -> impl Iterator<Item = (String, String)> {
    RENAMES
        .iter()
        .map(|(torch, ours)| (format!("^{}", ours.replace('.', r"\.")), literal(torch)))
}

/// An anchored prefix pattern of [`RENAMES`] as the plain text it matches.
fn literal(pattern: &str) -> String {
    pattern.trim_start_matches('^').replace(r"\.", ".")
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::data(path, message)
}

/// Loads weights into `model` in place.
pub fn load_weights(model: &mut AlexNet, path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(
            Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound))
                .with_help("checkpoint paths are relative to the experiment file"),
        );
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let result = if ext == "safetensors" {
        let mut store = SafetensorsStore::from_file(path);
        let keys = store
            .keys()
            .map_err(|e| bad(path, format!("not a readable safetensors file: {e}")))?;
        // safetensors from PyTorch keep Linear weights as [out, in]; the
        // adapter transposes them as PytorchStore does.
        let store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .validate(false)
            .allow_partial(true);
        let mut store = remap(store, &keys, |s, from, to| s.with_key_remapping(from, to));
        model
            .load_from(&mut store)
            .map_err(|e| bad(path, format!("cannot apply safetensors weights: {e}")))?
    } else {
        let mut probe = PytorchStore::from_file(path);
        let keys = probe.keys().map_err(|e| {
            bad(path, format!("not a readable PyTorch checkpoint: {e}")).with_help(
                "runner reads zip-format .pt/.pth files saved by torch.save (PyTorch ≥ 1.6)",
            )
        })?;
        // Training scripts nest the state_dict; find where the tensors are.
        let nest = ["model_state_dict", "state_dict", "model"]
            .into_iter()
            .find(|k| keys.iter().any(|x| x.starts_with(&format!("{k}."))));
        // validate/allow_partial off: every problem comes back in the
        // ApplyResult, where `check` lists them all at once.
        let mut store = PytorchStore::from_file(path)
            .map_indices_contiguous(false)
            .validate(false)
            .allow_partial(true);
        let inner: Vec<String> = match nest {
            Some(k) => {
                store = store.with_top_level_key(k);
                keys.iter()
                    .filter_map(|x| x.strip_prefix(&format!("{k}.")).map(str::to_string))
                    .collect()
            }
            None => keys.clone(),
        };
        let mut store = remap(store, &inner, |s, from, to| s.with_key_remapping(from, to));
        model
            .load_from(&mut store)
            .map_err(|e| bad(path, format!("cannot apply checkpoint: {e}")))?
    };
    check(path, &result)
}

fn remap<S>(mut store: S, keys: &[String], with: impl Fn(S, &str, &str) -> S) -> S {
    if keys.iter().any(|k| k.starts_with("module.")) {
        store = with(store, r"^module\.", "");
    }
    for (from, to) in RENAMES {
        store = with(store, from, to);
    }
    store
}

fn check(path: &Path, r: &burn::store::ApplyResult) -> Result<()> {
    let mut problems = Vec::new();
    for e in &r.errors {
        problems.push(match e {
            burn::store::ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => {
                format!(
                    "{} has shape {:?} in the checkpoint but the model expects {:?}",
                    torch_name(path),
                    found.as_slice(),
                    expected.as_slice()
                )
            }
            other => format!("{other:?}"),
        });
    }
    for (m, _) in &r.missing {
        problems.push(format!("{} is missing from the checkpoint", torch_name(m)));
    }
    for u in &r.unused {
        problems.push(format!("{u} is in the checkpoint but not in the model"));
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    Err(bad(path, format!("checkpoint does not fit the model:\n  {}", problems.join("\n  ")))
        .with_help("check the model's widths/num_classes (torchvision: 64,192,384,256,256; HW: 64,192,384,384,256)"))
}

/// Our field path back to torchvision's name, for messages users recognise.
fn torch_name(ours: &str) -> String {
    for (from, to) in RENAMES {
        if let Some(rest) = ours.strip_prefix(to) {
            return format!("{}{rest}", literal(from));
        }
    }
    ours.to_string()
}
