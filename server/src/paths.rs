//! Paths from outside (requests, records read back from storage): resolved
//! before they are compared with the folders the server may use.

use std::path::{Path, PathBuf};

/// Resolves symlinks in the longest existing prefix of `path` and appends the rest.
///
/// # Errors
/// I/O errors reading the current directory.
pub fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(canonical) => {
                let mut out = canonical;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(_) => {
                let Some(name) = existing.file_name() else {
                    return Ok(absolute);
                };
                rest.push(name.to_os_string());
                existing = existing.parent().unwrap_or(Path::new("/"));
            }
        }
    }
}

/// Whether `path` (absolute, without `.` or `..`), resolved, lies strictly
/// inside one of `roots` (resolved).
#[must_use]
pub fn is_strictly_inside(path: &Path, roots: &[PathBuf]) -> bool {
    use std::path::Component;
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return false;
    }
    let Ok(path) = resolve(path) else { return false };
    roots.iter().filter_map(|r| resolve(r).ok()).any(|root| path != root && path.starts_with(&root))
}
