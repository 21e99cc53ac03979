//! The storage layout version.
//!
//! Every store records the version of the layout it was written with under
//! [`NAMESPACE`]/[`KEY`], as decimal ASCII. A backend writes it when it
//! creates a store, and checks it every time it opens one, so that a newer
//! layout is never misread by an older build.
//!
//! History of layout versions:
//! - `1`: the first layout (issue 2).

use crate::{KvStore, StoreError};

/// The layout version this build reads and writes.
pub const LAYOUT_VERSION: u32 = 1;
/// The namespace of the store's own metadata.
pub const NAMESPACE: &str = "vigil";
/// The key of the layout version.
pub const KEY: &str = "layout_version";

/// Writes the current layout version into a new store.
///
/// # Errors
///
/// Any error of [`KvStore::write`].
pub fn init(store: &dyn KvStore) -> Result<(), StoreError> {
    store.write(NAMESPACE, KEY, LAYOUT_VERSION.to_string().as_bytes())
}

/// Checks that `store` carries the layout version this build understands.
///
/// # Errors
///
/// - [`StoreError::MissingLayout`] if the store has no version;
/// - [`StoreError::UnsupportedLayout`] if it has another one;
/// - any error of [`KvStore::read`].
pub fn check(store: &dyn KvStore) -> Result<(), StoreError> {
    let Some(raw) = store.read(NAMESPACE, KEY)? else {
        return Err(StoreError::MissingLayout);
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    match text.parse::<u32>() {
        Ok(LAYOUT_VERSION) => Ok(()),
        _ => Err(StoreError::UnsupportedLayout { found: text, supported: LAYOUT_VERSION }),
    }
}
