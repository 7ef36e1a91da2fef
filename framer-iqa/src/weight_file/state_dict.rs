//! Looking tensors up by name in a file's contents, with errors that name the file, the tensor,
//! and the expected and found shapes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{HostTensor, read_with_names};
use crate::error::{IqaError, Result};

/// The path and the tensors of one weight file, for error messages that name both.
#[derive(Clone, Debug)]
pub(crate) struct WeightFile {
    pub(crate) path: PathBuf,
    /// Every float tensor name in the file.
    pub(crate) names: Vec<String>,
    /// The tensors read.
    pub(crate) tensors: BTreeMap<String, HostTensor>,
}

impl WeightFile {
    /// Reads the tensors whose name passes `keep`.
    pub(crate) fn read(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Self> {
        let (names, tensors) = read_with_names(path, keep)?;
        Ok(Self {
            path: path.to_path_buf(),
            names,
            tensors,
        })
    }

    /// The first of `names` present, checked against `shape`.
    pub(crate) fn get(&self, names: &[String], shape: &[usize]) -> Result<&HostTensor> {
        let found = names
            .iter()
            .find_map(|n| self.tensors.get(n).map(|t| (n, t)));
        let Some((name, t)) = found else {
            let mut sample: Vec<&str> = self.names.iter().map(String::as_str).take(8).collect();
            if self.names.len() > 8 {
                sample.push("…");
            }
            return Err(IqaError::WeightFile {
                path: self.path.clone(),
                message: format!(
                    "tensor `{}` not found{} (the file has {} float tensors: {})",
                    names[0],
                    if names.len() > 1 {
                        format!(" (nor {})", names[1..].join(", "))
                    } else {
                        String::new()
                    },
                    self.names.len(),
                    sample.join(", ")
                ),
            });
        };
        if t.shape != shape {
            return Err(IqaError::WeightFile {
                path: self.path.clone(),
                message: format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.shape
                ),
            });
        }
        Ok(t)
    }
}

/// Name prefixes under which pyiqa's checkpoints may hold their state dict (`module.` from
/// `DataParallel`, `params.` and `state_dict.` from training checkpoints), as pyiqa's
/// `load_pretrained_network` accepts them.
pub const STATE_DICT_PREFIXES: [&str; 6] = [
    "",
    "module.",
    "params.",
    "params.module.",
    "state_dict.",
    "state_dict.module.",
];

/// Named tensors of one source (a file, or `<tensors>` given in memory) looked up under
/// [`STATE_DICT_PREFIXES`], with errors that name the source, the network, the tensor and what
/// is wrong (missing, wrong shape, wrong length, non-finite value).
pub(crate) struct StateDict<'a> {
    /// The file, for error messages.
    pub(crate) path: &'a Path,
    /// The tensors read.
    pub(crate) tensors: &'a BTreeMap<String, HostTensor>,
    /// Every float tensor name of the source (for the list in "not found" messages).
    pub(crate) names: &'a [String],
    /// The network, in messages (`MUSIQ`, `MANIQA`).
    pub(crate) network: &'static str,
}

impl<'a> StateDict<'a> {
    /// `name` under the first prefix that holds it.
    pub(crate) fn find(&self, name: &str) -> Option<&'a HostTensor> {
        STATE_DICT_PREFIXES
            .iter()
            .find_map(|p| self.tensors.get(&format!("{p}{name}")))
    }

    /// `name` (under any prefix), checked against `shape` and for finite values.
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<&'a HostTensor> {
        let network = self.network;
        let fail = |message: String| IqaError::WeightFile {
            path: self.path.to_path_buf(),
            message,
        };
        let Some(t) = self.find(name) else {
            let mut sample: Vec<&str> = self.names.iter().map(String::as_str).take(8).collect();
            if self.names.len() > 8 {
                sample.push("…");
            }
            return Err(fail(format!(
                "{network} tensor `{name}` (shape {shape:?}) not found, also not with a `module.` \
                 or `params.` prefix (the file has {} float tensors: {})",
                self.names.len(),
                sample.join(", ")
            )));
        };
        if t.shape != shape {
            return Err(fail(format!(
                "{network} tensor `{name}` has shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        if t.data.len() != shape.iter().product::<usize>() {
            return Err(fail(format!(
                "{network} tensor `{name}` holds {} values for shape {shape:?}",
                t.data.len()
            )));
        }
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(fail(format!(
                "{network} tensor `{name}` has a non-finite value ({}) at flat index {i}",
                t.data[i]
            )));
        }
        Ok(t)
    }
}
