//! Copying files into place at the speed of the disk, each copy hashed
//! (a snapshot set into a folder, a snapshot set restored from one).

use std::fs::File;
use std::path::PathBuf;

/// One file for [`copy_hashed`].
pub(crate) struct CopyJob {
    pub from: PathBuf,
    pub to: PathBuf,
    /// The file's SHA-256 when it is already known (an immutable table):
    /// the copy is then not read again.
    pub known_sha: Option<String>,
}

/// Copies each file with the kernel's copy (`copy_file_range`: no byte
/// passes through this process) while other threads (one per core, at least
/// two, at most four) each hash a copy and fsync it, so that what is hashed
/// is exactly what was placed, the copy never waits for the disk, and the
/// copying and hashing overlap on every core (a table's SHA-256 costs more
/// than its copy; the small files' fsyncs go to the disk side by side).
/// Every copy is durable when this returns. `stop` is asked between files (a cancel);
/// `progress` gets each file's size once copied. The size and SHA-256 of
/// each copy, in order.
///
/// # Errors
/// I/O errors; `Interrupted` when `stop` said so.
pub(crate) fn copy_hashed(
    jobs: &[CopyJob],
    stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(&CopyJob, u64),
) -> std::io::Result<Vec<(u64, String)>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, PathBuf, bool)>(16);
    let rx = std::sync::Mutex::new(rx);
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hashers: Vec<_> = (0..hashers())
            .map(|_| {
                scope.spawn(|| -> std::io::Result<Vec<(usize, String)>> {
                    let mut out = Vec::new();
                    loop {
                        let next = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                        let Ok((i, path, hash)) = next else { return Ok(out) };
                        match hash_and_sync(&path, hash) {
                            Ok(sha) => out.extend(sha.map(|sha| (i, sha))),
                            Err(e) => {
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                })
            })
            .collect();
        let mut sizes = vec![0u64; jobs.len()];
        let copied = (|| -> std::io::Result<()> {
            for (i, job) in jobs.iter().enumerate() {
                if stop() {
                    return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "canceled"));
                }
                if let Some(parent) = job.to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                sizes[i] = std::fs::copy(&job.from, &job.to)?;
                if failed.load(std::sync::atomic::Ordering::Relaxed) || tx.send((i, job.to.clone(), job.known_sha.is_none())).is_err() {
                    break; // a hasher failed: its error is reported below
                }
                progress(job, sizes[i]);
            }
            Ok(())
        })();
        drop(tx);
        let mut shas: Vec<Option<String>> = jobs.iter().map(|j| j.known_sha.clone()).collect();
        let mut hashed = Ok(());
        for hasher in hashers {
            match hasher.join().map_err(|_| std::io::Error::other("a hashing thread panicked")).and_then(|h| h) {
                Ok(done) => done.into_iter().for_each(|(i, sha)| shas[i] = Some(sha)),
                Err(e) => hashed = hashed.and(Err(e)),
            }
        }
        hashed?;
        copied?;
        Ok(sizes.into_iter().zip(shas).map(|(size, sha)| (size, sha.unwrap_or_default())).collect())
    })
}

/// Threads that hash and fsync copies: one per core, at least two (an
/// fsync waits on the disk), at most four.
fn hashers() -> usize {
    super::concurrent::cores().clamp(2, 4)
}

/// A copy made durable, and its SHA-256 when `hash`.
fn hash_and_sync(path: &std::path::Path, hash: bool) -> std::io::Result<Option<String>> {
    let file = File::open(path)?;
    let sha = if hash { Some(super::format::sha256_reader(&file)?) } else { None };
    file.sync_all()?;
    Ok(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_placed_hashed_and_a_stop_stops_between_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut jobs = Vec::new();
        for (i, len) in [0usize, 1, 3 << 20].iter().enumerate() {
            let from = dir.path().join(format!("in-{i}"));
            std::fs::write(&from, vec![i as u8 + 7; *len]).expect("writes");
            jobs.push(CopyJob { from, to: dir.path().join(format!("out/{i}")), known_sha: None });
        }
        jobs[1].known_sha = Some("kept".into());
        let mut seen = 0;
        let results = copy_hashed(&jobs, &|| false, &mut |_, _| seen += 1).expect("copies");
        assert_eq!(seen, 3);
        for (job, (size, sha)) in jobs.iter().zip(&results) {
            let placed = std::fs::read(&job.to).expect("placed");
            assert_eq!(placed, std::fs::read(&job.from).expect("source"));
            assert_eq!(*size, placed.len() as u64);
            if job.known_sha.is_none() {
                assert_eq!(*sha, crate::backup::format::sha256_reader(&placed[..]).expect("hash"), "the copy's own hash");
            }
        }
        assert_eq!(results[1].1, "kept", "a known hash is not recomputed");
        let err = copy_hashed(&jobs, &|| true, &mut |_, _| {}).expect_err("stopped");
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
    }
}
