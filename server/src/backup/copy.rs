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
/// passes through this process) while a second thread hashes each copy and
/// fsyncs it, so that what is hashed is exactly what was placed, the copy
/// never waits for the disk, and the two overlap on two cores. Every copy is
/// durable when this returns. `stop` is asked between files (a cancel);
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
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, PathBuf, bool)>(16);
        let hasher = scope.spawn(move || -> std::io::Result<Vec<(usize, String)>> {
            let mut out = Vec::new();
            for (i, path, hash) in rx {
                let file = File::open(&path)?;
                if hash {
                    out.push((i, super::format::sha256_reader(&file)?));
                }
                file.sync_all()?;
            }
            Ok(out)
        });
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
                if tx.send((i, job.to.clone(), job.known_sha.is_none())).is_err() {
                    break; // the hasher failed: its error is reported below
                }
                progress(job, sizes[i]);
            }
            Ok(())
        })();
        drop(tx);
        let hashed = hasher.join().map_err(|_| std::io::Error::other("the hashing thread panicked"))?;
        copied?;
        let mut shas: Vec<Option<String>> = jobs.iter().map(|j| j.known_sha.clone()).collect();
        for (i, sha) in hashed? {
            shas[i] = Some(sha);
        }
        Ok(sizes.into_iter().zip(shas).map(|(size, sha)| (size, sha.unwrap_or_default())).collect())
    })
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
