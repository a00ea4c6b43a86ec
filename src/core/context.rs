//! Call context (PROTOCOL.md section 1, `Offer.data`): what the caller attaches to a new call — who
//! calls on whose behalf, a CRM or ticket reference (`contact_ref`), a display name
//! (`display_name`) — relayed unchanged to every device the call is offered to.

use super::types::personal_data_logged;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A validated call context: at most [`CallContext::MAX_ENTRIES`] entries, keys of 1 to
/// [`CallContext::MAX_KEY_CHARS`] characters from `[a-z0-9_.-]`, values of at most
/// [`CallContext::MAX_VALUE_BYTES`] bytes, [`CallContext::MAX_TOTAL_BYTES`] bytes of keys and values
/// in all. Empty for most calls and for every renegotiation or pull. Cloning is cheap; entries
/// iterate in key order.
///
/// `Debug` shows the keys and only the size of each value (values are personal data: a name, an
/// account number) unless [`super::log_personal_data`] is on.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CallContext(Option<Arc<BTreeMap<String, String>>>);

/// Why a call context was refused: sent as `Error{INVALID_ARGUMENT}` naming the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallContextError {
    /// More than [`CallContext::MAX_ENTRIES`] entries.
    #[error("has {0} entries, over the limit of {max}", max = CallContext::MAX_ENTRIES)]
    TooManyEntries(usize),
    /// A key that is empty, longer than [`CallContext::MAX_KEY_CHARS`], or has a character outside
    /// `[a-z0-9_.-]`; the text is the key, shortened.
    #[error("key {0:?} must be 1 to {max} characters of a-z, 0-9, '_', '.', '-'", max = CallContext::MAX_KEY_CHARS)]
    BadKey(String),
    /// A value over [`CallContext::MAX_VALUE_BYTES`] bytes, under this key.
    #[error("value of {key:?} is {bytes} bytes, over the limit of {max} bytes", max = CallContext::MAX_VALUE_BYTES)]
    ValueTooLarge {
        /// The entry's key.
        key: String,
        /// The value's size, in bytes.
        bytes: usize,
    },
    /// Keys and values over [`CallContext::MAX_TOTAL_BYTES`] bytes in all.
    #[error("is {0} bytes in all, over the limit of {max} bytes", max = CallContext::MAX_TOTAL_BYTES)]
    TooLarge(usize),
}

impl CallContext {
    /// Most entries in one context.
    pub const MAX_ENTRIES: usize = 16;
    /// Longest key, in characters (all ASCII).
    pub const MAX_KEY_CHARS: usize = 64;
    /// Largest value, in bytes of UTF-8.
    pub const MAX_VALUE_BYTES: usize = 1024;
    /// Largest context, in bytes of keys and values together.
    pub const MAX_TOTAL_BYTES: usize = 4096;

    /// Validates entries as they came on the wire (any order), against the limits above.
    ///
    /// # Errors
    /// [`CallContextError`] names the first fault: the entry count, then each entry in key order
    /// (key alphabet and length, value size), then the total size.
    pub fn parse<I>(entries: I) -> Result<Self, CallContextError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let map: BTreeMap<String, String> = entries.into_iter().collect();
        if map.len() > Self::MAX_ENTRIES {
            return Err(CallContextError::TooManyEntries(map.len()));
        }
        let mut total = 0;
        for (key, value) in &map {
            let key_ok = (1..=Self::MAX_KEY_CHARS).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
            if !key_ok {
                return Err(CallContextError::BadKey(key.chars().take(64).collect()));
            }
            if value.len() > Self::MAX_VALUE_BYTES {
                return Err(CallContextError::ValueTooLarge {
                    key: key.clone(),
                    bytes: value.len(),
                });
            }
            total += key.len() + value.len();
        }
        if total > Self::MAX_TOTAL_BYTES {
            return Err(CallContextError::TooLarge(total));
        }
        Ok(Self::from_map(map))
    }

    /// A context of entries this process made itself (a phone network's caller name), unchecked.
    pub fn trusted<I>(entries: I) -> Self
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::from_map(entries.into_iter().collect())
    }

    fn from_map(map: BTreeMap<String, String>) -> Self {
        if map.is_empty() {
            CallContext(None)
        } else {
            CallContext(Some(Arc::new(map)))
        }
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.as_ref()?.get(key).map(String::as_str)
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|map| map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in self.iter() {
            if personal_data_logged() {
                map.entry(&key, &value);
            } else {
                map.entry(&key, &format_args!("<{} bytes>", value.len()));
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn limits_are_checked_in_order_and_each_names_its_fault() {
        assert!(CallContext::parse(entries(&[])).unwrap().is_empty());
        let ok = CallContext::parse(entries(&[("contact_ref", "T-1"), ("operator.name", "Bob")]))
            .unwrap();
        assert_eq!(ok.get("contact_ref"), Some("T-1"));
        let many: Vec<(String, String)> = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(
            CallContext::parse(many),
            Err(CallContextError::TooManyEntries(17))
        );
        for bad in ["", "Upper", "sp ace", "ü", &"k".repeat(65)] {
            let err = CallContext::parse(entries(&[(bad, "v")])).unwrap_err();
            assert!(matches!(err, CallContextError::BadKey(_)), "{bad:?}: {err}");
        }
        assert!(CallContext::parse(entries(&[(&"k".repeat(64), "v")])).is_ok());
        let big = "x".repeat(1025);
        let err = CallContext::parse(entries(&[("note", &big)])).unwrap_err();
        assert_eq!(
            err,
            CallContextError::ValueTooLarge {
                key: "note".into(),
                bytes: 1025
            }
        );
        assert!(err.to_string().contains("note"), "{err}");
        let values: Vec<(String, String)> = (0..5)
            .map(|i| (format!("k{i}"), "x".repeat(1000)))
            .collect();
        assert_eq!(
            CallContext::parse(values),
            Err(CallContextError::TooLarge(5010))
        );
    }

    #[test]
    fn debug_shows_keys_and_only_the_size_of_values() {
        let context = CallContext::parse(entries(&[("display_name", "Kari Nordmann")])).unwrap();
        assert_eq!(format!("{context:?}"), r#"{"display_name": <13 bytes>}"#);
    }
}
