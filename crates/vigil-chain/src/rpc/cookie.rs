//! The RPC cookie file, as Bitcoin Core writes it: `__cookie__:<password>` in
//! `<data-dir>/regtest/.cookie`, readable by the owner only, made afresh at
//! every start and removed at shutdown.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The user name of cookie authentication.
pub const COOKIE_USER: &str = "__cookie__";

/// Why a cookie could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The file could not be written or read.
    #[error("cookie file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold `user:password`.
    #[error("cookie file {0} is malformed (expected `user:password`)")]
    Malformed(PathBuf),
    /// No randomness was available for the password.
    #[error("no randomness available for the cookie: {0}")]
    Random(String),
}

/// A cookie file this process wrote. It is removed when dropped.
#[derive(Debug)]
pub struct CookieFile {
    path: PathBuf,
    password: String,
}

impl CookieFile {
    /// Writes a new cookie with a random 256-bit password to `path`, with
    /// mode 0600, replacing any stale one.
    ///
    /// # Errors
    ///
    /// [`CookieError`] if it cannot be written.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, CookieError> {
        let path = path.into();
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| CookieError::Random(e.to_string()))?;
        let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let io = |source| CookieError::Io { path: path.clone(), source };
        let tmp = path.with_extension("cookie.tmp");
        {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp).map_err(io)?;
            file.write_all(format!("{COOKIE_USER}:{password}").as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &path).map_err(io)?;
        Ok(Self { path, password })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user and password it holds.
    pub fn credentials(&self) -> (&str, &str) {
        (COOKIE_USER, &self.password)
    }
}

impl Drop for CookieFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove the RPC cookie");
        }
    }
}

/// Reads a cookie file into its user and password.
///
/// # Errors
///
/// [`CookieError::Io`] if it cannot be read, [`CookieError::Malformed`] if it
/// has no `:`.
pub fn read_cookie(path: &Path) -> Result<(String, String), CookieError> {
    let text =
        fs::read_to_string(path).map_err(|source| CookieError::Io { path: path.to_path_buf(), source })?;
    let (user, password) =
        text.trim_end().split_once(':').ok_or_else(|| CookieError::Malformed(path.to_path_buf()))?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_private_readable_and_removed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".cookie");
        let cookie = CookieFile::create(&path).expect("create");
        let (user, password) = read_cookie(&path).expect("read");
        assert_eq!(user, COOKIE_USER);
        assert_eq!(password.len(), 64);
        assert_eq!(cookie.credentials(), (COOKIE_USER, password.as_str()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let other = CookieFile::create(dir.path().join("other")).expect("create");
        assert_ne!(other.credentials().1, cookie.credentials().1, "each cookie is random");
        drop(cookie);
        assert!(!path.exists());
    }

    #[test]
    fn malformed_cookie_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".cookie");
        fs::write(&path, "no separator").expect("write");
        assert!(matches!(read_cookie(&path), Err(CookieError::Malformed(_))));
        assert!(matches!(read_cookie(&dir.path().join("absent")), Err(CookieError::Io { .. })));
    }
}
