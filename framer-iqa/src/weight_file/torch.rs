//! The two containers of `torch.save`: the zip archive of PyTorch ≥ 1.6 (`data.pkl` and one
//! entry per storage) and the legacy stream (magic number, protocol, system info, the pickled
//! state dict, the storage keys, then the raw storages), and the gathering of (possibly
//! strided) tensors from their storages.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use super::pickle::{TensorRef, Unpickler, Value};
use super::{Contents, HostTensor, PResult};

/// The tensors of a state dict (one level of nesting flattened with `.`).
/// Every float tensor name (sorted), and the kept tensors with their storage references.
type NamesAndKept = (Vec<String>, Vec<(String, TensorRef)>);

/// The sorted names of every float tensor of the state dict `root`, and the tensors whose name
/// passes `keep`.
fn float_names_and_kept(root: Value, keep: &dyn Fn(&str) -> bool) -> PResult<NamesAndKept> {
    let mut tensors = collect_tensors(root)?;
    let mut names: Vec<String> = tensors
        .iter()
        .filter(|(_, t)| t.dtype.is_some())
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    tensors.retain(|(name, _)| keep(name));
    Ok((names, tensors))
}

fn collect_tensors(root: Value) -> PResult<Vec<(String, TensorRef)>> {
    let Value::Dict(items) = root else {
        return Err("the file does not hold a dictionary of tensors (a state dict)".into());
    };
    let mut out = Vec::new();
    for (k, v) in items {
        let Value::Str(k) = k else { continue };
        match v {
            Value::Tensor(t) => out.push((k, t)),
            Value::Dict(inner) => {
                for (ik, iv) in inner {
                    if let (Value::Str(ik), Value::Tensor(t)) = (ik, iv) {
                        out.push((format!("{k}.{ik}"), t));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Gathers a (possibly strided) tensor from its storage's decoded values.
fn materialise(name: &str, t: &TensorRef, storage: &[f32]) -> PResult<HostTensor> {
    if t.shape.len() != t.stride.len() {
        return Err(format!("tensor `{name}`: size and stride ranks differ"));
    }
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("tensor `{name}`: size {:?} overflows", t.shape))?;
    if numel == 0 {
        return Ok(HostTensor {
            shape: t.shape.clone(),
            data: Vec::new(),
        });
    }
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&s, &st)| {
            (s - 1).checked_mul(st).and_then(|x| acc.checked_add(x))
        })
        .unwrap_or(usize::MAX);
    if last >= storage.len() {
        return Err(format!(
            "tensor `{name}` (shape {:?}) reaches element {last} of a storage of {}",
            t.shape,
            storage.len()
        ));
    }
    let mut data = Vec::with_capacity(numel);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let at = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(&i, &s)| i * s)
                .sum::<usize>();
        data.push(storage[at]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(HostTensor {
        shape: t.shape.clone(),
        data,
    })
}

fn assemble(
    tensors: Vec<(String, TensorRef)>,
    storages: &HashMap<String, Vec<f32>>,
) -> PResult<BTreeMap<String, HostTensor>> {
    let mut out = BTreeMap::new();
    for (name, t) in tensors {
        if t.dtype.is_none() {
            continue;
        }
        let storage = storages
            .get(&t.storage)
            .ok_or_else(|| format!("tensor `{name}`: storage `{}` missing", t.storage))?;
        out.insert(name.clone(), materialise(&name, &t, storage)?);
    }
    Ok(out)
}

pub(super) fn read_zip(bytes: &[u8], keep: &dyn Fn(&str) -> bool) -> PResult<Contents> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("zip: {e}"))?;
    let pkl = archive
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .map(str::to_string)
        .ok_or("zip archive without data.pkl (not a torch.save file)")?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let read_entry = |archive: &mut zip::ZipArchive<_>, name: &str| -> PResult<Vec<u8>> {
        let mut f = archive
            .by_name(name)
            .map_err(|e| format!("zip entry `{name}`: {e}"))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| format!("zip entry `{name}`: {e}"))?;
        Ok(buf)
    };
    let little_endian = match read_entry(&mut archive, &format!("{prefix}byteorder")) {
        Ok(b) => b != b"big",
        Err(_) => true,
    };
    let pickle = read_entry(&mut archive, &pkl)?;
    let mut up = Unpickler::new(&pickle, 0);
    let root = up.load()?;
    let (names, tensors) = float_names_and_kept(root, keep)?;
    let needed: std::collections::HashSet<&str> =
        tensors.iter().map(|(_, t)| t.storage.as_str()).collect();
    let mut storages = HashMap::new();
    for (key, &(dtype, numel, _)) in &up.storages {
        let Some(dtype) = dtype else { continue };
        if !needed.contains(key.as_str()) {
            continue;
        }
        let raw = read_entry(&mut archive, &format!("{prefix}data/{key}"))?;
        let len = numel.saturating_mul(dtype.size());
        if raw.len() < len {
            return Err(format!(
                "storage `{key}`: {} bytes, expected {len}",
                raw.len()
            ));
        }
        storages.insert(key.clone(), dtype.decode(&raw[..len], little_endian));
    }
    Ok((names, assemble(tensors, &storages)?))
}

pub(super) fn read_legacy(bytes: &[u8], keep: &dyn Fn(&str) -> bool) -> PResult<Contents> {
    const MAGIC: i128 = 0x1950a86a20f9469cfc6c;
    let mut up = Unpickler::new(bytes, 0);
    match up.load()? {
        Value::Int(MAGIC) => {}
        _ => return Err("a pickle stream without the torch.save magic number".into()),
    }
    up.load()?; // protocol version
    let sys_info = up.load()?;
    let little_endian = match &sys_info {
        Value::Dict(items) => !items.iter().any(|(k, v)| {
            matches!(k, Value::Str(s) if s == "little_endian") && matches!(v, Value::Bool(false))
        }),
        _ => true,
    };
    let root = up.load()?;
    let keys = match up.load()? {
        Value::List(k) => k,
        _ => return Err("legacy torch file: storage key list missing".into()),
    };
    let (names, tensors) = float_names_and_kept(root, keep)?;
    let needed: std::collections::HashSet<&str> =
        tensors.iter().map(|(_, t)| t.storage.as_str()).collect();
    let mut pos = up.pos;
    let mut storages = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err("legacy torch file: storage key is not a string".into());
        };
        let &(dtype, _, element) = up
            .storages
            .get(&key)
            .ok_or_else(|| format!("legacy torch file: storage `{key}` is never used"))?;
        let header: [u8; 8] = bytes
            .get(pos..pos.saturating_add(8))
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| format!("storage `{key}`: file ends before its size"))?;
        let numel = usize::try_from(u64::from_le_bytes(header)).unwrap_or(usize::MAX);
        pos += 8;
        let Some(dtype) = dtype else {
            // an integer storage (e.g. a batch-norm counter): skipped
            let element = element
                .ok_or_else(|| format!("storage `{key}` has a type this reader does not know"))?;
            pos = pos.saturating_add(numel.saturating_mul(element));
            continue;
        };
        let len = numel.saturating_mul(dtype.size());
        let raw = bytes
            .get(pos..pos.saturating_add(len))
            .ok_or_else(|| format!("storage `{key}`: file ends before its {numel} elements"))?;
        if needed.contains(key.as_str()) {
            storages.insert(key, dtype.decode(raw, little_endian));
        }
        pos += len;
    }
    Ok((names, assemble(tensors, &storages)?))
}
