//! A streaming GGUF (version 3) writer: metadata and tensor infos first, then each tensor's
//! data as it is generated, so a multi-GB file never sits in memory. Written by hand: no
//! well-kept Rust crate writes GGUF as a stream, and llama.cpp's `gguf_write_to_file` wants every
//! tensor's data in memory. The format is small (see ggml's `docs/gguf.md`); what it writes is
//! read back with llama.cpp's own reader in the tests.

use std::io::{self, Write};

use super::blocks::BlockType;

/// Alignment of tensor data (`general.alignment`'s default).
pub const ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Clone, Debug)]
pub enum Value {
    /// `GGUF_TYPE_UINT32`.
    U32(u32),
    /// `GGUF_TYPE_UINT64`.
    U64(u64),
    /// `GGUF_TYPE_FLOAT32`.
    F32(f32),
    /// `GGUF_TYPE_BOOL`.
    Bool(bool),
    /// `GGUF_TYPE_STRING`.
    Str(String),
    /// An array of strings.
    Strings(Vec<String>),
    /// An array of `INT32`.
    I32s(Vec<i32>),
}

/// One tensor's header entry.
pub struct TensorInfo<'a> {
    /// Name.
    pub name: &'a str,
    /// ggml dimensions, innermost first.
    pub dims: &'a [u64],
    /// Storage type.
    pub ty: BlockType,
}

fn string(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn value(w: &mut impl Write, v: &Value) -> io::Result<()> {
    let t = |w: &mut dyn Write, id: u32| w.write_all(&id.to_le_bytes());
    match v {
        Value::U32(x) => {
            t(w, 4)?;
            w.write_all(&x.to_le_bytes())
        }
        Value::U64(x) => {
            t(w, 10)?;
            w.write_all(&x.to_le_bytes())
        }
        Value::F32(x) => {
            t(w, 6)?;
            w.write_all(&x.to_le_bytes())
        }
        Value::Bool(x) => {
            t(w, 7)?;
            w.write_all(&[u8::from(*x)])
        }
        Value::Str(s) => {
            t(w, 8)?;
            string(w, s)
        }
        Value::Strings(items) => {
            t(w, 9)?;
            t(w, 8)?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|s| string(w, s))
        }
        Value::I32s(items) => {
            t(w, 9)?;
            t(w, 5)?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        }
    }
}

/// Bytes `n` needs to reach the next multiple of [`ALIGNMENT`].
pub fn padding(n: u64) -> u64 {
    (ALIGNMENT - n % ALIGNMENT) % ALIGNMENT
}

/// Writes the header (metadata, tensor infos, padding): after it, each tensor's data follows
/// in the order given, each padded to [`ALIGNMENT`]. Returns the header's length.
pub fn write_header(
    w: &mut impl Write,
    metadata: &[(String, Value)],
    tensors: &[TensorInfo<'_>],
) -> io::Result<u64> {
    let mut buf = Vec::new();
    buf.write_all(b"GGUF")?;
    buf.write_all(&3u32.to_le_bytes())?;
    buf.write_all(&(tensors.len() as u64).to_le_bytes())?;
    buf.write_all(&(metadata.len() as u64).to_le_bytes())?;
    for (key, v) in metadata {
        string(&mut buf, key)?;
        value(&mut buf, v)?;
    }
    let mut offset = 0u64;
    for t in tensors {
        string(&mut buf, t.name)?;
        buf.write_all(&(t.dims.len() as u32).to_le_bytes())?;
        for d in t.dims {
            buf.write_all(&d.to_le_bytes())?;
        }
        buf.write_all(&t.ty.ggml_id().to_le_bytes())?;
        buf.write_all(&offset.to_le_bytes())?;
        let bytes = t.ty.bytes_for(t.dims.iter().product());
        offset += bytes + padding(bytes);
    }
    let pad = padding(buf.len() as u64) as usize;
    buf.resize(buf.len() + pad, 0);
    w.write_all(&buf)?;
    Ok(buf.len() as u64)
}
