//! Naming rules for namespaces and keys.
//!
//! Namespaces and keys are short ASCII strings made of letters, digits, `_`,
//! `-`, `.` and `/`. The rules keep keys portable across backends (SQLite
//! today, PostgreSQL or a filesystem store later) and make a malformed key a
//! typed error instead of a surprise.

use crate::StoreError;

/// The longest namespace or key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

fn check(namespace: &str, key: &str, s: &str) -> Result<(), StoreError> {
    let fail =
        |reason| Err(StoreError::InvalidKey { namespace: namespace.to_owned(), key: key.to_owned(), reason });
    if s.is_empty() {
        return fail("must not be empty");
    }
    if s.len() > MAX_KEY_LEN {
        return fail("longer than 255 bytes");
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')) {
        return fail("only ASCII letters, digits, '_', '-', '.' and '/' are allowed");
    }
    Ok(())
}

/// Checks a namespace against the naming rules.
///
/// # Errors
///
/// [`StoreError::InvalidKey`] naming the rule broken.
pub fn check_namespace(namespace: &str) -> Result<(), StoreError> {
    check(namespace, "", namespace)
}

/// Checks a key against the naming rules.
///
/// # Errors
///
/// [`StoreError::InvalidKey`] naming the rule broken.
pub fn check_key(namespace: &str, key: &str) -> Result<(), StoreError> {
    check(namespace, key, key)
}

/// Checks both a namespace and a key.
pub(crate) fn check_both(namespace: &str, key: &str) -> Result<(), StoreError> {
    check_namespace(namespace)?;
    check_key(namespace, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(check_both("chain/block", "0f91-_.x").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        for (ns, key) in [("", "k"), ("ns", ""), ("ns", "a b"), ("n\u{e9}", "k"), ("ns", "k\0")] {
            assert!(
                matches!(check_both(ns, key), Err(StoreError::InvalidKey { .. })),
                "{ns:?}/{key:?} must be refused"
            );
        }
        assert!(check_both("ns", &"k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(check_both("ns", &"k".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
