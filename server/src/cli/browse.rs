//! `rookery-backup --ls / --cat / --diff`: a backup location read at a point
//! in time, offline (no server), through the sets' id indexes.

use std::io::Write;

use crate::backup::location::location_from_cli;
use crate::backup::sealed::SetSecret;
use crate::browse::{self, PointChoice, PointReader};
use crate::restore::RestoreError;

/// Where and how far to read, from the command line.
pub struct Point<'a> {
    pub dest: &'a str,
    pub up_to: Option<&'a str>,
    pub database: Option<&'a str>,
    pub secret: Option<&'a SetSecret>,
}

fn open(point: &Point<'_>, up_to: Option<&str>) -> Result<PointReader, RestoreError> {
    let location = location_from_cli(point.dest)?;
    // A snapshot set is placed in the temporary folder to be read.
    let scratch = std::env::temp_dir();
    browse::open(
        &location,
        PointChoice { up_to, database: point.database, encryption_key: None, secret: point.secret, scratch: Some(&scratch) },
    )
}

/// Prints every document with `prefix` at the point: id, etag, last
/// modified and size, one per line after a line naming the set.
///
/// # Errors
/// As [`browse::open`] and [`browse::each_document`]; output errors.
pub fn ls(point: &Point<'_>, prefix: &str, out: &mut dyn Write) -> Result<u64, RestoreError> {
    let mut reader = open(point, point.up_to)?;
    let newest = reader.set_id(reader.chain().len().saturating_sub(1)).to_string();
    let io = |e: std::io::Error| RestoreError::InvalidRequest(format!("cannot write the listing: {e}"));
    writeln!(out, "# documents at {newest}{}", if prefix.is_empty() { String::new() } else { format!(" starting with '{prefix}'") })
        .map_err(io)?;
    let mut count = 0u64;
    let mut failed = None;
    browse::each_document(&mut reader, prefix, &mut |d| {
        count += 1;
        failed = writeln!(out, "{}\t{}\t{}\t{}", d.id, d.etag, d.last_modified, d.size_bytes).err();
        failed.is_none()
    })?;
    failed.map_or(Ok(count), |e| Err(io(e)))
}

/// Writes one document's body at the point to `out`; `Ok(Err(message))`
/// when it did not exist there.
///
/// # Errors
/// As [`browse::open`] and [`browse::get`]; output errors.
pub fn cat(point: &Point<'_>, id: &str, out: &mut dyn Write) -> Result<Result<String, String>, RestoreError> {
    let mut reader = open(point, point.up_to)?;
    Ok(match browse::get(&mut reader, id)? {
        Ok(found) => {
            out.write_all(&found.body)
                .and_then(|()| writeln!(out))
                .map_err(|e| RestoreError::InvalidRequest(format!("cannot write: {e}")))?;
            Ok(found.set_id)
        }
        Err(message) => Err(message),
    })
}

/// Prints the ids created, changed and deleted between `FROM..TO` (`TO`
/// empty: the newest set), one `Created|Changed|Deleted<TAB>id` per line.
///
/// # Errors
/// `InvalidRequest` for a range without `..`; as [`browse::each_change`].
pub fn diff(point: &Point<'_>, range: &str, out: &mut dyn Write) -> Result<u64, RestoreError> {
    let (from, to) = range.split_once("..").ok_or_else(|| RestoreError::InvalidRequest(format!("--diff takes FROM..TO, not '{range}'")))?;
    let mut reader = open(point, Some(to).filter(|t| !t.is_empty()))?;
    let io = |e: std::io::Error| RestoreError::InvalidRequest(format!("cannot write the diff: {e}"));
    let before = browse::point_in(reader.chain(), from)?;
    let newest = reader.chain().len().saturating_sub(1);
    writeln!(out, "# from {} to {}", reader.set_id(before), reader.set_id(newest)).map_err(io)?;
    let mut count = 0u64;
    let mut failed = None;
    browse::each_change(&mut reader, from, &mut |e| {
        count += 1;
        failed = writeln!(out, "{:?}\t{}", e.change, e.id).err();
        failed.is_none()
    })?;
    failed.map_or(Ok(count), |e| Err(io(e)))
}
