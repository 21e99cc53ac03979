//! The data directory: its layout, its lock, and the node seed.
//!
//! ```text
//! <data-dir>/                 default ~/.vigil, mode 0700
//!   regtest/                  one directory per network, mode 0700
//!     seed                    the node seed: 32 random bytes, mode 0600
//!     vigild.lock             held while a vigild uses this directory
//!     chain.sqlite            the embedded regtest chain
//!     vigil.sqlite            the node's store (today: the wallet)
//!     .cookie                 RPC cookie, while vigild runs
//! ```
//!
//! The seed is created once and never replaced: a seed file of the wrong
//! size is reported as corrupt, because every key of the node derives from it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bitcoin::Network;

/// The size of the node seed, in bytes.
pub const SEED_LEN: usize = 32;

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("{0} is in use by another vigild; stop it first or choose another --data-dir")]
    Locked(PathBuf),
    /// The seed file exists but is not a seed. It was left untouched.
    #[error("seed file {path} is corrupt ({len} bytes instead of 32); restore it from a backup, it is never replaced")]
    CorruptSeed {
        /// The seed file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The network has no directory name (only regtest is supported today).
    #[error("network {0} is not supported yet; vigild runs on regtest")]
    UnsupportedNetwork(Network),
    /// No randomness was available to create the seed.
    #[error("no randomness available to create the seed: {0}")]
    Random(String),
}

/// The default data directory: `$VIGIL_DATA_DIR`, else `$HOME/.vigil`, else
/// `./.vigil`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_DATA_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".vigil"), |home| PathBuf::from(home).join(".vigil"))
}

/// Bitcoin Core's directory name for a network.
pub fn network_dir_name(network: Network) -> Result<&'static str, DataDirError> {
    match network {
        Network::Regtest => Ok("regtest"),
        other => Err(DataDirError::UnsupportedNetwork(other)),
    }
}

/// An opened data directory. The lock is held until it is dropped.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    network_dir: PathBuf,
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io { path: path.to_path_buf(), source }
}

fn create_private_dir(path: &Path) -> Result<(), DataDirError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(io(path))
}

impl DataDir {
    /// Creates (if needed) and locks the directory of `network` under `root`.
    ///
    /// # Errors
    ///
    /// [`DataDirError::Locked`] if another process holds it,
    /// [`DataDirError::UnsupportedNetwork`], or [`DataDirError::Io`].
    pub fn open(root: &Path, network: Network) -> Result<Self, DataDirError> {
        let network_dir = root.join(network_dir_name(network)?);
        create_private_dir(&network_dir)?;
        let lock_path = network_dir.join("vigild.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(DataDirError::Locked(network_dir)),
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        Ok(Self { root: root.to_path_buf(), network_dir, _lock: lock })
    }

    /// The root data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The network's directory.
    pub fn network_dir(&self) -> &Path {
        &self.network_dir
    }

    /// The seed file.
    pub fn seed_path(&self) -> PathBuf {
        self.network_dir.join("seed")
    }

    /// The embedded chain's store.
    pub fn chain_store_path(&self) -> PathBuf {
        self.network_dir.join("chain.sqlite")
    }

    /// The node's store.
    pub fn node_store_path(&self) -> PathBuf {
        self.network_dir.join("vigil.sqlite")
    }

    /// The RPC cookie.
    pub fn cookie_path(&self) -> PathBuf {
        self.network_dir.join(".cookie")
    }

    /// Reads the node seed, creating it (mode 0600) if there is none. Returns
    /// the seed and whether it was just created.
    ///
    /// # Errors
    ///
    /// [`DataDirError::CorruptSeed`] if the file is not 32 bytes,
    /// [`DataDirError::Random`], or [`DataDirError::Io`].
    pub fn load_or_create_seed(&self) -> Result<([u8; SEED_LEN], bool), DataDirError> {
        let path = self.seed_path();
        match File::open(&path) {
            Ok(mut file) => {
                let len = file.metadata().map_err(io(&path))?.len();
                if len != SEED_LEN as u64 {
                    return Err(DataDirError::CorruptSeed { path, len });
                }
                let mut seed = [0u8; SEED_LEN];
                file.read_exact(&mut seed).map_err(io(&path))?;
                warn_if_readable_by_others(&file, &path);
                Ok((seed, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((self.create_seed()?, true)),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn create_seed(&self) -> Result<[u8; SEED_LEN], DataDirError> {
        let path = self.seed_path();
        let tmp = self.network_dir.join("seed.tmp");
        let mut seed = [0u8; SEED_LEN];
        getrandom::fill(&mut seed).map_err(|e| DataDirError::Random(e.to_string()))?;
        // A leftover from a crash before the link was never the seed (there is
        // no seed, or we would not be here), and may have any mode: start anew.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&tmp)(e)),
        }
        {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp).map_err(io(&tmp))?;
            file.write_all(&seed).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
        }
        // The lock is held, so nobody else creates a seed meanwhile; a hard
        // link refuses to replace an existing file, unlike a rename.
        fs::hard_link(&tmp, &path).map_err(io(&path))?;
        fs::remove_file(&tmp).map_err(io(&tmp))?;
        File::open(&self.network_dir).and_then(|d| d.sync_all()).map_err(io(&self.network_dir))?;
        Ok(seed)
    }
}

fn warn_if_readable_by_others(file: &File, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = file.metadata() {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the seed file is readable by other users; chmod 600 it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn seed_is_created_private_once_and_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path(), Network::Regtest).expect("open");
        let (seed, created) = dir.load_or_create_seed().expect("seed");
        assert!(created);
        let (again, created) = dir.load_or_create_seed().expect("seed");
        assert_eq!((again, created), (seed, false));
        #[cfg(unix)]
        assert_eq!((mode(&dir.seed_path()), mode(dir.network_dir())), (0o600, 0o700));
    }

    #[test]
    fn a_leftover_temporary_seed_is_not_reused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path(), Network::Regtest).expect("open");
        let leftover = dir.network_dir().join("seed.tmp");
        fs::write(&leftover, [0u8; 32]).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&leftover, fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let (seed, created) = dir.load_or_create_seed().expect("seed");
        assert!(created);
        assert_ne!(seed, [0u8; 32], "a fresh random seed, not the leftover");
        assert!(!leftover.exists());
        #[cfg(unix)]
        assert_eq!(mode(&dir.seed_path()), 0o600);
    }

    #[test]
    fn corrupt_seed_is_reported_and_untouched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path(), Network::Regtest).expect("open");
        fs::write(dir.seed_path(), b"short").expect("write");
        assert!(matches!(dir.load_or_create_seed(), Err(DataDirError::CorruptSeed { len: 5, .. })));
        assert_eq!(fs::read(dir.seed_path()).expect("read"), b"short");
    }

    #[test]
    fn a_data_dir_is_used_by_one_process_at_a_time() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = DataDir::open(tmp.path(), Network::Regtest).expect("open");
        assert!(matches!(DataDir::open(tmp.path(), Network::Regtest), Err(DataDirError::Locked(_))));
        drop(first);
        DataDir::open(tmp.path(), Network::Regtest).expect("free again");
        assert!(matches!(
            DataDir::open(tmp.path(), Network::Bitcoin),
            Err(DataDirError::UnsupportedNetwork(_))
        ));
    }
}
