//! Runs the conformance suite on every backend, and checks that a damaged
//! SQLite file is reported and left untouched.

use std::fs;
use std::path::Path;

use vigil_store::{conformance, layout, KvStore, MemoryStore, SqliteStore, StoreError};

#[test]
fn memory_backend_conforms() {
    conformance::run(&|| Box::new(MemoryStore::new()));
}

#[test]
fn sqlite_backend_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = std::cell::Cell::new(0);
    conformance::run(&|| {
        counter.set(counter.get() + 1);
        let path = dir.path().join(format!("store-{}.sqlite", counter.get()));
        Box::new(SqliteStore::open(path).expect("open a new store"))
    });
}

#[test]
fn sqlite_writes_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    conformance::run_durability(&|| Box::new(SqliteStore::open(&path).expect("open")));
}

fn valid_store_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("store.sqlite");
    let store = SqliteStore::open(&path).expect("create");
    for i in 0..200 {
        store.write("ns", &format!("k{i:04}"), &vec![i as u8; 2000]).expect("write");
    }
    drop(store);
    path
}

fn assert_corrupt_and_untouched(path: &Path, expect_in_detail: &str) {
    let before = fs::read(path).expect("read file");
    match SqliteStore::open(path) {
        Err(StoreError::Corrupt { detail, .. }) => {
            assert!(detail.contains(expect_in_detail), "unexpected detail: {detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(path).expect("read file"), before, "the file must be left untouched");
}

#[test]
fn sqlite_refuses_empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = valid_store_file(dir.path());
    fs::write(&path, b"").expect("truncate");
    assert_corrupt_and_untouched(&path, "empty");
}

#[test]
fn sqlite_refuses_truncated_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = valid_store_file(dir.path());
    let bytes = fs::read(&path).expect("read");
    assert!(bytes.len() > 100_000, "the store is large enough to truncate");
    fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    assert_corrupt_and_untouched(&path, "truncated");
}

#[test]
fn sqlite_refuses_foreign_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    fs::write(&path, b"this is not a database, just some text that is long enough to have a header of 100 bytes and then some more").expect("write");
    assert_corrupt_and_untouched(&path, "not an SQLite database");
}

#[test]
fn sqlite_refuses_damaged_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = valid_store_file(dir.path());
    let mut bytes = fs::read(&path).expect("read");
    // Overwrite the middle of the file (b-tree pages), keeping the header.
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8192] {
        *b = 0xff;
    }
    fs::write(&path, &bytes).expect("write");
    let before = fs::read(&path).expect("read");
    assert!(matches!(SqliteStore::open(&path), Err(StoreError::Corrupt { .. })));
    assert_eq!(fs::read(&path).expect("read"), before);
}

#[test]
fn sqlite_refuses_a_wal_without_its_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    fs::write(dir.path().join("store.sqlite-wal"), b"an orphaned write-ahead log").expect("write");
    match SqliteStore::open(&path) {
        Err(StoreError::Corrupt { detail, .. }) => assert!(detail.contains("missing"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!path.exists(), "no new database was created over the orphaned WAL");
}

#[test]
fn sqlite_refuses_unknown_layout_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    SqliteStore::open(&path).expect("create").write(layout::NAMESPACE, layout::KEY, b"99").expect("write");
    match SqliteStore::open(&path) {
        Err(StoreError::UnsupportedLayout { found, supported }) => {
            assert_eq!(found, "99");
            assert_eq!(supported, layout::LAYOUT_VERSION);
        }
        other => panic!("expected UnsupportedLayout, got {other:?}"),
    }
    let store = SqliteStore::open(dir.path().join("other.sqlite")).expect("create");
    store.remove(layout::NAMESPACE, layout::KEY).expect("remove");
    drop(store);
    assert!(matches!(SqliteStore::open(dir.path().join("other.sqlite")), Err(StoreError::MissingLayout)));
}

#[test]
fn arc_store_is_a_store() {
    let store: std::sync::Arc<dyn KvStore> = std::sync::Arc::new(MemoryStore::new());
    store.write("ns", "k", b"v").expect("write");
    assert_eq!(KvStore::read(&store, "ns", "k").expect("read").as_deref(), Some(&b"v"[..]));
}

/// A crash in the middle of a checkpoint can leave the main file shorter
/// than its (already rewritten) header says, with the write-ahead log still
/// holding every page: SQLite completes it from the log. The store opens
/// it, with every write, instead of calling it truncated.
#[test]
fn sqlite_opens_a_checkpoint_cut_short_from_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = valid_store_file(dir.path());
    let before_growth = fs::read(&path).expect("read");
    let wal = dir.path().join("store.sqlite-wal");
    // More writes, in the log only (well below the auto-checkpoint
    // threshold, so that the log still holds every page it wrote).
    let store = SqliteStore::open(&path).expect("open");
    for i in 0..60 {
        store.write("more", &format!("k{i:04}"), &vec![7u8; 2000]).expect("write");
    }
    let log = fs::read(&wal).expect("the log holds the new pages");
    drop(store);
    let grown = fs::read(&path).expect("read");
    assert!(grown.len() > before_growth.len(), "the checkpoint grew the file");
    // The torn file: the old pages, but page 1 (the header) already
    // rewritten with the grown page count; the log as it was.
    let page_size = usize::from(u16::from_be_bytes([grown[16], grown[17]]));
    let mut torn = before_growth.clone();
    torn[..page_size].copy_from_slice(&grown[..page_size]);
    fs::write(&path, &torn).expect("write");
    fs::write(&wal, &log).expect("write");
    let store = SqliteStore::open(&path).expect("SQLite finishes the checkpoint from the log");
    assert_eq!(store.read("more", "k0059").expect("read"), Some(vec![7u8; 2000]));
    assert_eq!(store.read("ns", "k0000").expect("read"), Some(vec![0u8; 2000]));
}

/// A truncated file is still refused when a file that is no write-ahead log
/// lies beside it.
#[test]
fn sqlite_refuses_a_truncated_file_beside_a_junk_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = valid_store_file(dir.path());
    let bytes = fs::read(&path).expect("read");
    fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    fs::write(dir.path().join("store.sqlite-wal"), vec![0xab; 4096]).expect("write");
    assert_corrupt_and_untouched(&path, "truncated");
}
