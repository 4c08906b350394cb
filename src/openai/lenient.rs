//! Lenient reading: a field whose JSON has an unexpected shape reads as its default (absent),
//! so one odd field from a foreign server never costs the whole reply. Only text that is not
//! JSON at all is an error.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// For `#[serde(default, deserialize_with = "lenient")]`: the field's value, or its default
/// when the JSON there does not fit the type (a string where a number belongs, …).
pub(super) fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// Reads a reply (or request) leniently: an error only when `json` is not JSON; JSON of
/// another shape entirely (an array, a number) reads as the type's default, as an empty reply.
pub fn read<T: DeserializeOwned + Default>(json: impl AsRef<[u8]>) -> Result<T, serde_json::Error> {
    let value: Value = serde_json::from_slice(json.as_ref())?;
    Ok(read_value(&value))
}

/// [`read`] for JSON already parsed (when the caller also keeps parts of it verbatim).
pub fn read_value<T: DeserializeOwned + Default>(value: &Value) -> T {
    T::deserialize(value).unwrap_or_default()
}
