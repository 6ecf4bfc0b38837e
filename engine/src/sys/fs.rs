//! Opening a file beneath a directory in one system call: what a static file server needs on
//! every request without resolving the whole path in user space.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Opens the directory `path` as a handle that [`open_beneath`] resolves paths from (`O_PATH`: it
/// cannot be read, only walked).
pub fn open_dir(path: &Path) -> io::Result<File> {
    let c = cstring(path)?;
    // SAFETY: `c` is a NUL-terminated string alive for the call; open returns a new fd or -1.
    let fd = super::cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just opened by us and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Why [`open_beneath`] opened nothing.
#[derive(Debug)]
pub enum BeneathError {
    /// The path leaves the directory (`..` above it, absolute, or a symlink pointing out).
    Outside,
    /// openat2 is not there (a kernel before 5.6, or a seccomp filter): resolve in user space.
    Unsupported,
    /// Any other failure of the open (not found, not a directory, permission, ...).
    Io(io::Error),
}

impl std::fmt::Display for BeneathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BeneathError::Outside => write!(f, "the path leaves its directory"),
            BeneathError::Unsupported => write!(f, "openat2 is not available"),
            BeneathError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BeneathError {}

/// Opens `rel` for reading, resolved from the directory `dir` (see [`open_dir`]) and never leaving
/// it: `..` above it, an absolute path and a symlink that points outside fail with `EXDEV`
/// (openat2(2) with `RESOLVE_BENEATH`, and no `/proc` magic links). A directory opens too, so
/// the caller tells what it got from its metadata. `ENOSYS` where the kernel (before 5.6) or a
/// seccomp filter refuses openat2: the caller falls back to resolving in user space. Opened
/// non-blocking, so a FIFO or a device in the tree does not hold up the opener.
pub fn open_beneath(dir: &File, rel: &Path) -> Result<File, BeneathError> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = cstring(rel).map_err(BeneathError::Io)?;
    // SAFETY: open_how is three plain integers (libc marks it non-exhaustive, so it cannot be
    // built by a literal); all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `c` is NUL-terminated and `how` a live open_how, both alive for the call, and the
    // size passed is that of `how`; `dir` is an open fd we borrow. openat2 returns a new fd or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EXDEV | libc::ELOOP) => BeneathError::Outside,
            Some(libc::ENOSYS) => BeneathError::Unsupported,
            _ => BeneathError::Io(e),
        });
    }
    let fd = libc::c_int::try_from(ret).map_err(|_| {
        BeneathError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "openat2: fd out of range",
        ))
    })?;
    // SAFETY: `fd` was just opened by us and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn opens_beneath_and_refuses_to_leave() {
        let base = std::env::temp_dir().join(format!("tapir-sys-fs-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/f.txt"), b"inside").unwrap();
        std::fs::write(base.join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink("d/f.txt", root.join("in")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
        let dir = open_dir(&root).unwrap();

        let mut s = String::new();
        open_beneath(&dir, Path::new("in"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "inside", "a symlink that stays inside is followed");
        assert!(open_beneath(&dir, Path::new("d"))
            .unwrap()
            .metadata()
            .unwrap()
            .is_dir());
        assert!(open_beneath(&dir, Path::new(""))
            .unwrap()
            .metadata()
            .unwrap()
            .is_dir());
        for escape in ["out", "abs", "../secret", "d/../../secret", "/etc/passwd"] {
            let e = open_beneath(&dir, Path::new(escape)).unwrap_err();
            assert!(matches!(e, BeneathError::Outside), "{escape}: {e}");
        }
        let e = open_beneath(&dir, Path::new("missing")).unwrap_err();
        assert!(
            matches!(&e, BeneathError::Io(e) if e.kind() == io::ErrorKind::NotFound),
            "{e}"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
