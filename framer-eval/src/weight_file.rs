//! Reading named float tensors from weight files: `.safetensors`, and PyTorch `.pth` files as
//! written by `torch.save` (the zip format of PyTorch ≥ 1.6 and the older "legacy" format,
//! which the torchvision and `lpips` weight files use).
//!
//! Only what state dicts need is understood: a (possibly nested) dictionary of tensors whose
//! storages are float32, float64, float16 or bfloat16. Integer tensors (such as batch-norm
//! counters) are left out of the result. Pickled objects of other classes are not executed;
//! they are kept as opaque values, so a state dict that contains them still loads.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};

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
/// [`EvalError::Read`] if the file cannot be read, [`EvalError::WeightFile`] naming the file
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

fn read_with_names(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Contents> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let fail = |message: String| EvalError::WeightFile {
        path: path.to_path_buf(),
        message,
    };
    if bytes.starts_with(b"PK\x03\x04") {
        read_torch_zip(&bytes, keep).map_err(fail)
    } else if bytes.first() == Some(&0x80) && !looks_like_safetensors(&bytes) {
        read_torch_legacy(&bytes, keep).map_err(fail)
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
/// [`EvalError::InvalidArgument`] if a tensor's data length does not match its shape,
/// [`EvalError::Write`] naming the file.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if t.shape.iter().product::<usize>() != t.data.len() {
            return Err(EvalError::InvalidArgument(format!(
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
                .map_err(|e| EvalError::InvalidArgument(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| EvalError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FloatType {
    F32,
    F64,
    F16,
    BF16,
}

impl FloatType {
    fn from_storage(name: &str) -> Option<Self> {
        match name {
            "FloatStorage" => Some(Self::F32),
            "DoubleStorage" => Some(Self::F64),
            "HalfStorage" => Some(Self::F16),
            "BFloat16Storage" => Some(Self::BF16),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
            Self::F16 | Self::BF16 => 2,
        }
    }

    fn decode(self, bytes: &[u8], little_endian: bool) -> Vec<f32> {
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
                    Self::F16 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
                    Self::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
                }
            })
            .collect()
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}

// ---------------------------------------------------------------------------------------------
// Pickle: a small interpreter for the subset of protocol 2–5 that `torch.save` emits.

#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float,
    Str(String),
    Bytes,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage {
        key: String,
        dtype: Option<FloatType>,
    },
    Tensor(TensorRef),
    /// The result of calling a class or function this reader does not model.
    Opaque,
    Mark,
}

#[derive(Clone, Debug)]
struct TensorRef {
    storage: String,
    dtype: Option<FloatType>,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    /// Storage key → (float type, element count, element size in bytes) for every storage met.
    storages: BTreeMap<String, (Option<FloatType>, usize, Option<usize>)>,
}

type PResult<T> = std::result::Result<T, String>;

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            stack: Vec::new(),
            memo: HashMap::new(),
            storages: BTreeMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("pickle data ends early (byte {})", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> PResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> PResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> PResult<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn line(&mut self) -> PResult<String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("pickle GLOBAL without end of line")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> PResult<Value> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn pop(&mut self) -> PResult<Value> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".into())
    }

    fn top(&mut self) -> PResult<&mut Value> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle stack underflow".into())
    }

    fn pop_mark(&mut self) -> PResult<Vec<Value>> {
        let m = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("pickle MARK missing")?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_put(&mut self, key: u32) -> PResult<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> PResult<()> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("pickle memo entry {key} missing"))?;
        self.stack.push(v);
        Ok(())
    }

    /// Runs until STOP and returns the pickled value. Note: the memo holds copies, so a
    /// dictionary fetched from the memo does not see items added after it was stored; torch
    /// state dicts never rely on that.
    fn load(&mut self) -> PResult<Value> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i128));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i128));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i128));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    if n > 16 {
                        self.stack.push(Value::Opaque);
                    } else {
                        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                            0xff
                        } else {
                            0
                        };
                        let mut buf = [fill; 16];
                        buf[..n].copy_from_slice(b);
                        self.stack.push(Value::Int(i128::from_le_bytes(buf)));
                    }
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Float);
                }
                b'X' | b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c | b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.u64()? as usize,
                    };
                    self.take(n)?;
                    self.stack.push(Value::Bytes);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err(format!("pickle STACK_GLOBAL at byte {at}: not strings")),
                    }
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    if let Value::List(l) = self.top()? {
                        l.push(v);
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    if let Value::List(l) = self.top()? {
                        l.extend(items);
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let Value::Dict(d) = self.top()? {
                        d.push((k, v));
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(format!("pickle SETITEMS at byte {at}: odd item count"));
                    }
                    if let Value::Dict(d) = self.top()? {
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                }
                b'b' => {
                    // BUILD: object state (e.g. a state dict's `_metadata`); not needed.
                    self.pop()?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(func, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    self.pop()?;
                    self.pop()?;
                    self.stack.push(Value::Opaque);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.stack.push(v);
                }
                _ => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{op:02x} at byte {at} (not a torch.save state dict?)"
                    ));
                }
            }
        }
    }

    /// `('storage', storage_type, key, location, numel[, view_metadata])`.
    fn persistent(&mut self, pid: Value) -> PResult<Value> {
        let Value::Tuple(items) = pid else {
            return Err("persistent id is not a tuple".into());
        };
        match items.as_slice() {
            [
                Value::Str(kind),
                Value::Global(_, ty),
                key,
                _location,
                numel,
                rest @ ..,
            ] if kind == "storage" => {
                if let Some(view) = rest.first()
                    && !matches!(view, Value::None)
                {
                    return Err("storage views (legacy view_metadata) are not supported".into());
                }
                let key = match key {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    other => return Err(format!("storage key {other:?} is not a string")),
                };
                let numel = as_usize(numel).ok_or("storage size is not an integer")?;
                let dtype = FloatType::from_storage(ty);
                let element = dtype.map(FloatType::size).or(match ty.as_str() {
                    "LongStorage" => Some(8),
                    "IntStorage" => Some(4),
                    "ShortStorage" => Some(2),
                    "CharStorage" | "ByteStorage" | "BoolStorage" => Some(1),
                    _ => None,
                });
                self.storages.insert(key.clone(), (dtype, numel, element));
                Ok(Value::Storage { key, dtype })
            }
            _ => Err(format!("unsupported persistent id {items:?}")),
        }
    }

    fn call(&mut self, func: Value, args: Value) -> PResult<Value> {
        let Value::Global(module, name) = func else {
            return Ok(Value::Opaque);
        };
        let args = match args {
            Value::Tuple(a) => a,
            _ => Vec::new(),
        };
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") | ("builtins", "dict") => {
                let mut d = Vec::new();
                if let Some(Value::List(pairs)) = args.first() {
                    for p in pairs {
                        if let Value::Tuple(kv) | Value::List(kv) = p
                            && kv.len() == 2
                        {
                            d.push((kv[0].clone(), kv[1].clone()));
                        }
                    }
                }
                Ok(Value::Dict(d))
            }
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                let [storage, offset, shape, stride, ..] = args.as_slice() else {
                    return Err(format!("{name}: expected at least 4 arguments"));
                };
                let Value::Storage { key, dtype } = storage else {
                    return Err(format!("{name}: first argument is not a storage"));
                };
                Ok(Value::Tensor(TensorRef {
                    storage: key.clone(),
                    dtype: *dtype,
                    offset: as_usize(offset).ok_or("tensor offset is not an integer")?,
                    shape: as_usizes(shape).ok_or("tensor size is not a tuple of integers")?,
                    stride: as_usizes(stride).ok_or("tensor stride is not a tuple of integers")?,
                }))
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Ok(args.into_iter().next().unwrap_or(Value::None))
            }
            _ => Ok(Value::Opaque),
        }
    }
}

fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}

fn as_usizes(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(as_usize).collect(),
        _ => None,
    }
}

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

fn read_torch_zip(bytes: &[u8], keep: &dyn Fn(&str) -> bool) -> PResult<Contents> {
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

fn read_torch_legacy(bytes: &[u8], keep: &dyn Fn(&str) -> bool) -> PResult<Contents> {
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
            return Err(EvalError::WeightFile {
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
            return Err(EvalError::WeightFile {
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
        let fail = |message: String| EvalError::WeightFile {
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
