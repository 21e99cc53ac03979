//! The conformance suite every [`KvStore`] backend must pass.
//!
//! A backend's tests call [`run`] with a function that makes a fresh, empty
//! store, and [`run_durability`] if the backend persists: the contract of the
//! trait is checked the same way for every backend, today's and later ones.

use crate::{layout, Batch, KvStore, StoreError};

/// One named check of the suite.
type Check = (&'static str, fn(&dyn KvStore));

/// Runs every check of the trait's contract on fresh stores from `fresh`.
///
/// # Panics
///
/// When the backend breaks the contract; the message names the check.
pub fn run(fresh: &dyn Fn() -> Box<dyn KvStore>) {
    let checks: &[Check] = &[
        ("layout version present", layout_version_present),
        ("read of an absent key", read_absent),
        ("write then read", write_then_read),
        ("overwrite", overwrite),
        ("remove", remove),
        ("namespaces are isolated", namespaces_isolated),
        ("list is sorted", list_sorted),
        ("read_namespace matches list and read", read_namespace_matches),
        ("invalid keys refused", invalid_keys_refused),
        ("batch applies in order", batch_applies_in_order),
        ("invalid batch changes nothing", invalid_batch_changes_nothing),
        ("binary and large values", binary_and_large_values),
    ];
    for (name, check) in checks {
        let store = fresh();
        eprintln!("conformance: {name}");
        check(store.as_ref());
    }
}

/// Checks that what one store instance wrote is read back by the next one
/// `reopen` returns for the same storage, including batches and removals.
///
/// # Panics
///
/// When a write was not durable.
pub fn run_durability(reopen: &dyn Fn() -> Box<dyn KvStore>) {
    {
        let store = reopen();
        store.write("d", "single", b"one").expect("write");
        store.write("d", "gone", b"x").expect("write");
        store.remove("d", "gone").expect("remove");
        let mut batch = Batch::new();
        batch.write("d", "b1", b"1".to_vec()).write("e", "b2", b"2".to_vec());
        store.write_batch(&batch).expect("batch");
    }
    let store = reopen();
    layout::check(store.as_ref()).expect("layout version survives a reopen");
    assert_eq!(store.read("d", "single").expect("read").as_deref(), Some(&b"one"[..]));
    assert_eq!(store.read("d", "gone").expect("read"), None, "a removal is durable");
    assert_eq!(store.read("d", "b1").expect("read").as_deref(), Some(&b"1"[..]));
    assert_eq!(store.read("e", "b2").expect("read").as_deref(), Some(&b"2"[..]));
}

fn layout_version_present(s: &dyn KvStore) {
    layout::check(s).expect("a new store carries the current layout version");
}

fn read_absent(s: &dyn KvStore) {
    assert_eq!(s.read("ns", "missing").expect("read"), None);
    assert_eq!(s.list("ns").expect("list"), Vec::<String>::new());
}

fn write_then_read(s: &dyn KvStore) {
    s.write("ns", "k", b"v").expect("write");
    assert_eq!(s.read("ns", "k").expect("read").as_deref(), Some(&b"v"[..]));
}

fn overwrite(s: &dyn KvStore) {
    s.write("ns", "k", b"first").expect("write");
    s.write("ns", "k", b"second").expect("write");
    assert_eq!(s.read("ns", "k").expect("read").as_deref(), Some(&b"second"[..]));
    assert_eq!(s.list("ns").expect("list"), vec!["k".to_string()]);
}

fn remove(s: &dyn KvStore) {
    s.write("ns", "k", b"v").expect("write");
    s.remove("ns", "k").expect("remove");
    assert_eq!(s.read("ns", "k").expect("read"), None);
    s.remove("ns", "k").expect("removing an absent key succeeds");
}

fn namespaces_isolated(s: &dyn KvStore) {
    s.write("a", "k", b"in a").expect("write");
    s.write("a/b", "k", b"in a/b").expect("write");
    s.write("b", "k", b"in b").expect("write");
    assert_eq!(s.read("a", "k").expect("read").as_deref(), Some(&b"in a"[..]));
    assert_eq!(s.read("a/b", "k").expect("read").as_deref(), Some(&b"in a/b"[..]));
    assert_eq!(s.list("a").expect("list"), vec!["k".to_string()]);
    s.remove("a", "k").expect("remove");
    assert_eq!(s.read("b", "k").expect("read").as_deref(), Some(&b"in b"[..]));
}

fn list_sorted(s: &dyn KvStore) {
    for key in ["c", "a", "b/2", "b/10", "A"] {
        s.write("ns", key, key.as_bytes()).expect("write");
    }
    assert_eq!(s.list("ns").expect("list"), vec!["A", "a", "b/10", "b/2", "c"]);
}

fn read_namespace_matches(s: &dyn KvStore) {
    for (key, value) in [("x", &b"1"[..]), ("y", &b"2"[..])] {
        s.write("ns", key, value).expect("write");
    }
    s.write("other", "z", b"3").expect("write");
    let all = s.read_namespace("ns").expect("read_namespace");
    assert_eq!(all, vec![("x".to_string(), b"1".to_vec()), ("y".to_string(), b"2".to_vec())]);
}

fn invalid_keys_refused(s: &dyn KvStore) {
    let bad = [("", "k"), ("ns", ""), ("ns", "with space"), ("n s", "k")];
    for (ns, key) in bad {
        assert!(
            matches!(s.write(ns, key, b"v"), Err(StoreError::InvalidKey { .. })),
            "write to {ns:?}/{key:?} must be refused"
        );
        assert!(matches!(s.read(ns, key), Err(StoreError::InvalidKey { .. })));
        assert!(matches!(s.remove(ns, key), Err(StoreError::InvalidKey { .. })));
    }
    assert!(matches!(s.list("bad ns"), Err(StoreError::InvalidKey { .. })));
}

fn batch_applies_in_order(s: &dyn KvStore) {
    s.write("ns", "old", b"old").expect("write");
    let mut batch = Batch::new();
    batch
        .write("ns", "k", b"first".to_vec())
        .write("ns", "k", b"second".to_vec())
        .remove("ns", "old")
        .write("other", "k2", b"v2".to_vec())
        .write("ns", "tmp", b"t".to_vec())
        .remove("ns", "tmp");
    s.write_batch(&batch).expect("batch");
    assert_eq!(s.read("ns", "k").expect("read").as_deref(), Some(&b"second"[..]));
    assert_eq!(s.read("ns", "old").expect("read"), None);
    assert_eq!(s.read("ns", "tmp").expect("read"), None);
    assert_eq!(s.read("other", "k2").expect("read").as_deref(), Some(&b"v2"[..]));
    s.write_batch(&Batch::new()).expect("an empty batch succeeds");
}

fn invalid_batch_changes_nothing(s: &dyn KvStore) {
    s.write("ns", "keep", b"kept").expect("write");
    let mut batch = Batch::new();
    batch.write("ns", "new", b"n".to_vec()).remove("ns", "keep").write("ns", "bad key", b"x".to_vec());
    assert!(matches!(s.write_batch(&batch), Err(StoreError::InvalidKey { .. })));
    assert_eq!(s.read("ns", "new").expect("read"), None, "no part of a refused batch applies");
    assert_eq!(s.read("ns", "keep").expect("read").as_deref(), Some(&b"kept"[..]));
}

fn binary_and_large_values(s: &dyn KvStore) {
    let binary: Vec<u8> = (0..=255u8).collect();
    s.write("ns", "bin", &binary).expect("write");
    assert_eq!(s.read("ns", "bin").expect("read"), Some(binary));
    s.write("ns", "empty", b"").expect("write");
    assert_eq!(s.read("ns", "empty").expect("read"), Some(Vec::new()));
    let large = vec![0xa5u8; 4 << 20];
    s.write("ns", "large", &large).expect("write");
    assert_eq!(s.read("ns", "large").expect("read"), Some(large));
}
