//! A safetensors header read on its own, so that load errors can name the tensor a truncated file
//! cuts off and report tensors by their key and shape in the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use burn::store::{ApplyError, KeyRemapper};

use super::DIFFUSERS_KEY_REMAP;

/// Largest header accepted (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor entry of the header.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub key: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub begin: u64,
    pub end: u64,
}

/// Bytes per element of the safetensors dtypes.
fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

fn entry(key: &str, value: &serde_json::Value) -> Result<Entry, String> {
    let bad = |what: &str| format!("the header entry of tensor `{key}` is malformed ({what})");
    let dtype = value.get("dtype").and_then(|d| d.as_str()).ok_or_else(|| bad("no dtype"))?;
    let shape = value
        .get("shape")
        .and_then(|s| s.as_array())
        .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| bad("no shape"))?;
    let offsets = value
        .get("data_offsets")
        .and_then(|o| o.as_array())
        .and_then(|o| o.iter().map(|d| d.as_u64()).collect::<Option<Vec<_>>>())
        .filter(|o| o.len() == 2 && o[0] <= o[1])
        .ok_or_else(|| bad("no valid data_offsets"))?;
    let entry = Entry { key: key.to_string(), dtype: dtype.to_string(), shape, begin: offsets[0], end: offsets[1] };
    if let Some(size) = dtype_size(dtype) {
        let needed = entry.shape.iter().map(|&d| d as u64).product::<u64>() * size;
        if needed != entry.end - entry.begin {
            return Err(format!(
                "tensor `{key}` ({dtype} {:?}) needs {needed} bytes but the header gives it {}",
                entry.shape,
                entry.end - entry.begin
            ));
        }
    }
    Ok(entry)
}

/// Reads and checks the header of `path`: every tensor's byte range must fit its dtype and shape
/// and lie inside the file (the first tensor a truncation cuts off is named).
pub(super) fn read(path: &Path) -> Result<Vec<Entry>, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file.metadata().map_err(|e| format!("cannot read its size: {e}"))?.len();
    let mut prefix = [0u8; 8];
    if len < 8 || file.read_exact(&mut prefix).is_err() {
        return Err(format!("not a safetensors file: {len} bytes, fewer than the 8-byte header length"));
    }
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER || 8 + n > len {
        return Err(format!(
            "not a safetensors file or truncated: the header declares {n} bytes, the file has {} after the length",
            len - 8
        ));
    }
    let mut text = vec![0u8; n as usize];
    file.read_exact(&mut text).map_err(|e| format!("cannot read the header: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("the header is not valid JSON: {e}"))?;
    let object = json.as_object().ok_or("the header is not a JSON object")?;
    let mut entries = object
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .map(|(k, v)| entry(k, v))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| (e.begin, e.end));
    let data = len - 8 - n;
    let cut: Vec<&Entry> = entries.iter().filter(|e| e.end > data).collect();
    if let Some(first) = cut.first() {
        return Err(format!(
            "truncated: tensor `{}` ({} {:?}) needs bytes {}..{} of the data section, which has only {data} bytes \
             ({} tensor(s) cut off)",
            first.key,
            first.dtype,
            first.shape,
            first.begin,
            first.end,
            cut.len()
        ));
    }
    Ok(entries)
}

/// The file's keys and shapes, found from the model paths they are remapped to.
pub(super) struct FileKeys {
    by_path: HashMap<String, Entry>,
}

impl FileKeys {
    /// Applies [`DIFFUSERS_KEY_REMAP`] to every key of `entries`, as the store does.
    pub fn new(entries: &[Entry]) -> Self {
        let patterns = KeyRemapper::from_patterns(DIFFUSERS_KEY_REMAP.to_vec())
            .map(|r| r.to_regex_pairs())
            .unwrap_or_default();
        let remap = |key: &str| {
            patterns.iter().fold(key.to_string(), |k, (from, to)| {
                if from.is_match(&k) { from.replace_all(&k, to.as_str()).into_owned() } else { k }
            })
        };
        Self { by_path: entries.iter().map(|e| (remap(&e.key), e.clone())).collect() }
    }

    /// The file key that became the model path `path` (`path` itself if none did).
    pub fn original<'a>(&'a self, path: &'a str) -> &'a str {
        self.by_path.get(path).map(|e| e.key.as_str()).unwrap_or(path)
    }

    /// One line for a tensor the store could not apply, with shapes in the file's layout.
    pub fn describe(&self, error: &ApplyError) -> String {
        match error {
            ApplyError::ShapeMismatch { path, expected, found } => {
                let (expected, found) = (expected.to_vec(), found.to_vec());
                let file_shape = self.by_path.get(path.as_str()).map(|e| e.shape.clone()).unwrap_or(found.clone());
                // The PyTorch adapter transposes Linear weights: report the model's shape as the
                // file would have to hold it.
                let transposed = found.len() == 2 && file_shape != found && file_shape.iter().rev().eq(found.iter());
                let expected: Vec<usize> = if transposed { expected.into_iter().rev().collect() } else { expected };
                let key = self.original(path);
                let model = if key == path { String::new() } else { format!(" (model `{path}`)") };
                format!("tensor `{key}`{model}: expected shape {expected:?}, found {file_shape:?}")
            }
            ApplyError::DTypeMismatch { path, .. }
            | ApplyError::AdapterError { path, .. }
            | ApplyError::LoadError { path, .. } => format!("tensor `{}`: {error}", self.original(path)),
        }
    }
}

/// The closest of `candidates` to `key` when it is a near miss: the same last segment
/// (`weight`, `bias`, …) and at most `max(2, len/8)` edits away.
pub(super) fn near_miss<'a>(key: &str, candidates: &'a [String]) -> Option<&'a String> {
    let last = key.rsplit('.').next().unwrap_or(key);
    let limit = (key.len() / 8).max(2);
    candidates
        .iter()
        .filter(|c| c.rsplit('.').next() == Some(last) && c.len().abs_diff(key.len()) <= limit)
        .map(|c| (strsim::levenshtein(key, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses() {
        let unused = vec!["decoder.up_blocks.0.upsampler.0.conv.weight".to_string(), "decoder.conv_in.bias".to_string()];
        assert_eq!(
            near_miss("decoder.up_blocks.0.upsamplers.0.conv.weight", &unused),
            Some(&unused[0])
        );
        assert_eq!(near_miss("encoder.conv_in.weight", &unused), None);
    }
}
