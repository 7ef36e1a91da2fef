//! Reading named float tensors from weight files: `.safetensors`, and PyTorch `.pth` files as
//! written by `torch.save` (the zip format of PyTorch ≥ 1.6 and the older "legacy" format,
//! which the torchvision and `lpips` weight files use).
//!
//! Only what state dicts need is understood: a (possibly nested) dictionary of tensors whose
//! storages are float32, float64, float16 or bfloat16. Integer tensors (such as batch-norm
//! counters) are left out of the result. Pickled objects of other classes are not executed;
//! they are kept as opaque values, so a state dict that contains them still loads.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{IqaError, Result};

mod pickle;
mod state_dict;
mod torch;

pub use state_dict::STATE_DICT_PREFIXES;
pub(crate) use state_dict::{StateDict, WeightFile};

/// A reader's error message, before the file is named.
type PResult<T> = std::result::Result<T, String>;

/// A tensor read from a weight file: row-major values and their shape.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// The shape, outermost dimension first (PyTorch order: `[out, in, kh, kw]` for a conv).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in row-major order, converted to `f32`.
    pub data: Vec<f32>,
}

/// Reads every float tensor of a `.safetensors` or PyTorch `.pth` / `.pt` file, by name.
///
/// The format is recognised from the content (a zip archive or a pickle stream is PyTorch,
/// anything else is tried as safetensors). In a PyTorch file, a top-level dictionary whose
/// values are dictionaries (a training checkpoint such as `{"state_dict": {...}}`) contributes
/// its nested tensors under `outer.inner` names.
///
/// # Errors
/// [`IqaError::Read`] if the file cannot be read, [`IqaError::WeightFile`] naming the file
/// and what is wrong (corrupt archive, unsupported pickle content or dtype, data too short).
pub fn read_weight_file(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    read_weight_file_where(path, &|_| true)
}

/// As [`read_weight_file`], decoding only the tensors whose name passes `keep` (a torchvision
/// checkpoint's large classifier is then skipped).
///
/// # Errors
/// As [`read_weight_file`].
pub fn read_weight_file_where(
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, HostTensor>> {
    Ok(read_with_names(path, keep)?.1)
}

/// Every float tensor name of the file, and the kept tensors.
type Contents = (Vec<String>, BTreeMap<String, HostTensor>);

/// A safetensors file: an 8-byte little-endian header length that fits the file, then a JSON
/// object. (Its first byte is the low byte of that length, which can be `0x80`, the first byte
/// of a pickle too.)
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some(len) = bytes.get(..8) else {
        return false;
    };
    let len = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
    bytes.get(8) == Some(&b'{') && len <= (bytes.len() - 8) as u64
}

pub(super) fn read_with_names(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Contents> {
    let bytes = std::fs::read(path).map_err(|source| IqaError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let fail = |message: String| IqaError::WeightFile {
        path: path.to_path_buf(),
        message,
    };
    if bytes.starts_with(b"PK\x03\x04") {
        torch::read_zip(&bytes, keep).map_err(fail)
    } else if bytes.first() == Some(&0x80) && !looks_like_safetensors(&bytes) {
        torch::read_legacy(&bytes, keep).map_err(fail)
    } else {
        read_safetensors(&bytes, keep).map_err(|e| {
            fail(format!(
                "neither a PyTorch file (zip archive or pickle) nor a safetensors file: {e}"
            ))
        })
    }
}

fn read_safetensors(bytes: &[u8], keep: &dyn Fn(&str) -> bool) -> PResult<Contents> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    let mut names = Vec::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => FloatType::F32,
            safetensors::Dtype::F64 => FloatType::F64,
            safetensors::Dtype::F16 => FloatType::F16,
            safetensors::Dtype::BF16 => FloatType::BF16,
            _ => continue,
        };
        names.push(name.clone());
        if !keep(&name) {
            continue;
        }
        let data = dtype.decode(view.data(), true);
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    names.sort();
    Ok((names, out))
}

/// Writes `tensors` as a float32 `.safetensors` file (names sorted).
///
/// # Errors
/// [`IqaError::InvalidArgument`] if a tensor's data length does not match its shape,
/// [`IqaError::Write`] naming the file.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if t.shape.iter().product::<usize>() != t.data.len() {
            return Err(IqaError::InvalidArgument(format!(
                "tensor `{name}`: {} values for shape {:?}",
                t.data.len(),
                t.shape
            )));
        }
        let bytes: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.clone(), t.shape.clone(), bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| IqaError::InvalidArgument(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| IqaError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FloatType {
    F32,
    F64,
    F16,
    BF16,
}

impl FloatType {
    pub(super) fn from_storage(name: &str) -> Option<Self> {
        match name {
            "FloatStorage" => Some(Self::F32),
            "DoubleStorage" => Some(Self::F64),
            "HalfStorage" => Some(Self::F16),
            "BFloat16Storage" => Some(Self::BF16),
            _ => None,
        }
    }

    pub(super) fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
            Self::F16 | Self::BF16 => 2,
        }
    }

    pub(super) fn decode(self, bytes: &[u8], little_endian: bool) -> Vec<f32> {
        let n = self.size();
        bytes
            .chunks_exact(n)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(c);
                if !little_endian {
                    b[..n].reverse();
                }
                match self {
                    Self::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    Self::F64 => f64::from_le_bytes(b) as f32,
                    Self::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
                    Self::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
                }
            })
            .collect()
    }
}
