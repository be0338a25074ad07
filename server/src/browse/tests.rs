//! A chain of a full and two incrementals read at each point, against a
//! model of what the database held; damage, keys and a selective restore.

use std::collections::BTreeMap;

use rookery_types::{DocumentChange, RestoreDocumentsMode, RestoreDocumentsRequest};

use super::*;
use crate::backup::location::location_from_cli;
use crate::backup::BackupOptions;
use crate::engine::Rookery;

type Model = BTreeMap<String, Vec<u8>>;

struct Fixture {
    _dir: tempfile::TempDir,
    rookery: Rookery,
    location: String,
    /// What the database held at each set, oldest first, and the set ids.
    points: Vec<(String, Model)>,
}

fn body(i: u32, version: u32) -> Vec<u8> {
    format!(r#"{{"Order":{i},"Version":{version},"Lines":["{}"]}}"#, "x".repeat((i % 50) as usize)).into_bytes()
}

fn backup(rookery: &Rookery, location: &str, incremental: bool, secret: Option<&SetSecret>, snapshot: bool) -> String {
    let backup_type = if snapshot { rookery_types::BackupType::Snapshot } else { rookery_types::BackupType::Backup };
    let options = BackupOptions { location: location.into(), incremental, set_secret: secret.cloned(), backup_type, ..Default::default() };
    rookery.start_backup("Db", options).expect("starts").wait().expect("backs up").set_id
}

fn model(rookery: &Rookery) -> Model {
    let db = rookery.catalog().get("Db").expect("db");
    let (page, _) = db.store().list("", 0, 100_000).expect("lists");
    page.into_iter().filter(|(id, _)| !rookery_types::is_server_owned(id)).map(|(id, r)| (id, r.body)).collect()
}

/// 3,000 documents (several frames and blocks); then an incremental that
/// changes, deletes and creates; then one that deletes a changed document
/// and creates a deleted one again.
fn fixture(secret: Option<&SetSecret>) -> Fixture {
    fixture_of(secret, false)
}

/// [`fixture`], its first set a snapshot set when `snapshot`.
fn fixture_of(secret: Option<&SetSecret>, snapshot: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let rookery = Rookery::open(crate::config::Config::for_tests(&dir.path().join("data"))).expect("opens");
    let db = rookery.catalog().create("Db").expect("creates");
    let store = db.store();
    for i in 0..3000 {
        store.put(&format!("orders/{i:05}"), &body(i, 1), None).expect("puts");
    }
    let location = dir.path().join("backups").display().to_string();
    let mut points = Vec::new();
    points.push((backup(&rookery, &location, false, secret, snapshot), model(&rookery)));
    store.put("orders/00005", &body(5, 2), None).expect("puts");
    store.delete("orders/00007", None).expect("deletes");
    store.put("zeta/1", &body(1, 1), None).expect("puts");
    points.push((backup(&rookery, &location, true, secret, false), model(&rookery)));
    store.delete("orders/00005", None).expect("deletes");
    store.put("orders/00007", &body(7, 3), None).expect("puts");
    store.put("orders/01500", &body(1500, 3), None).expect("puts");
    points.push((backup(&rookery, &location, true, secret, false), model(&rookery)));
    Fixture { _dir: dir, rookery, location, points }
}

fn reader(f: &Fixture, up_to: &str, secret: Option<&SetSecret>) -> Result<PointReader, RestoreError> {
    let location = location_from_cli(&f.location).expect("location");
    let scratch = f.rookery.config().data_dir.clone();
    open(&location, PointChoice { up_to: Some(up_to), secret, scratch: Some(&scratch), ..Default::default() })
}

fn check_points(f: &Fixture, secret: Option<&SetSecret>) {
    for (set_id, model) in &f.points {
        let mut r = reader(f, set_id, secret).expect("opens");
        for id in ["orders/00005", "orders/00007", "orders/01500", "orders/02999", "zeta/1", "orders/3000", "a"] {
            match (get(&mut r, id).expect("reads"), model.get(id)) {
                (Ok(found), Some(expected)) => assert_eq!(&found.body, expected, "{id} at {set_id}"),
                (Err(_), None) => {}
                (got, want) => panic!("{id} at {set_id}: got {got:?}, want {want:?}"),
            }
        }
        // Every page of the listing, against the model.
        let mut listed = Vec::new();
        loop {
            let page = list(&mut r, "", listed.len(), 700).expect("lists");
            assert_eq!(&page.set_id, set_id);
            let n = page.results.len();
            listed.extend(page.results.into_iter().map(|d| (d.id, d.size_bytes)));
            if n < 700 {
                break;
            }
        }
        let expected: Vec<(String, u64)> = model.iter().map(|(id, b)| (id.clone(), b.len() as u64)).collect();
        assert_eq!(listed, expected, "listing at {set_id}");
        let prefixed = list(&mut r, "orders/0000", 2, 100).expect("lists");
        let want: Vec<&String> = model.keys().filter(|k| k.starts_with("orders/0000")).skip(2).collect();
        assert_eq!(prefixed.results.iter().map(|d| &d.id).collect::<Vec<_>>(), want, "prefix at {set_id}");
    }
}

#[test]
fn every_point_of_a_chain_reads_as_the_database_was() {
    let f = fixture(None);
    check_points(&f, None);
    // A deleted document names the set that deleted it.
    let mut r = reader(&f, &f.points[1].0, None).expect("opens");
    let gone = get(&mut r, "orders/00007").expect("reads").expect_err("deleted");
    assert!(gone.contains(&f.points[1].0), "{gone}");
    // A time picks the newest set created at or before it.
    let created = r.chain()[1].manifest.created.clone();
    let mut by_time = reader(&f, &created, None).expect("opens by time");
    assert_eq!(by_time.chain().len(), 2);
    assert_eq!(get(&mut by_time, "orders/00005").expect("reads").expect("found").body, body(5, 2));
}

/// Rewrites every set of `f` as format 5 wrote it: tops without first ids
/// or filters (`RKTOP01`), and the manifests and checksum lists to match.
fn as_format_5(f: &Fixture) {
    use crate::backup::frames::IndexTop;
    for (set_id, _) in &f.points {
        let set = std::path::Path::new(&f.location).join(set_id);
        let manifest_path = set.join("manifest.json");
        let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).expect("reads")).expect("json");
        manifest["FormatVersion"] = 5.into();
        for file in manifest["Files"].as_array_mut().expect("files") {
            let name = file["Name"].as_str().expect("a name").to_string();
            if !name.ends_with(".top") {
                continue;
            }
            let mut top = IndexTop::decode(&std::fs::read(set.join(&name)).expect("reads")).expect("a top");
            assert!(top.keyed, "written by format 6");
            top.keyed = false;
            top.frames.iter_mut().for_each(|f| f.first_id.clear());
            top.blocks.iter_mut().for_each(|b| b.filter = crate::backup::filter::IdFilter::default());
            let bytes = top.encode();
            assert!(bytes.starts_with(b"RKTOP01\n"));
            std::fs::write(set.join(&name), &bytes).expect("writes");
            file["Size"] = (bytes.len() as u64).into();
            file["Sha256"] = hex::encode(crate::backup::frames::sha256_of(&bytes)).into();
        }
        std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).expect("json")).expect("writes");
        let sums: String = std::fs::read_to_string(set.join("SHA256SUMS"))
            .expect("reads")
            .lines()
            .map(|line| {
                let (_, name) = line.split_once("  ").expect("a sums line");
                format!("{}  {name}\n", hex::encode(crate::backup::frames::sha256_of(&std::fs::read(set.join(name)).expect("reads"))))
            })
            .collect();
        std::fs::write(set.join("SHA256SUMS"), sums).expect("writes");
    }
}

/// Sets of format 5 (index tops without first ids or filters) read at every
/// point through their index blocks, as before format 6.
#[test]
fn a_chain_of_format_5_reads_as_the_database_was() {
    let f = fixture(None);
    as_format_5(&f);
    let location = location_from_cli(&f.location).expect("location");
    let chain = crate::restore::plan::choose_chain(&location, crate::restore::plan::ChainChoice::default()).expect("a chain");
    assert!(chain.iter().all(|s| s.manifest.format_version == 5), "rewritten as format 5");
    check_points(&f, None);
    let restored = f.points.last().expect("a point");
    let mut r = reader(&f, &restored.0, None).expect("opens");
    assert!(r.chain().iter().all(|s| s.manifest.format_version == 5));
    assert_eq!(get(&mut r, "orders/00007").expect("reads").expect("found").body, body(7, 3));
}

#[test]
fn a_diff_names_what_was_created_changed_and_deleted() {
    let f = fixture(None);
    let mut r = reader(&f, &f.points[2].0, None).expect("opens");
    let page = diff(&mut r, &f.points[0].0, 0, 100).expect("diffs");
    let got: Vec<(String, DocumentChange)> = page.results.into_iter().map(|e| (e.id, e.change)).collect();
    let want = vec![
        ("orders/00005".to_string(), DocumentChange::Deleted),
        ("orders/00007".to_string(), DocumentChange::Changed),
        ("orders/01500".to_string(), DocumentChange::Changed),
        ("zeta/1".to_string(), DocumentChange::Created),
    ];
    assert_eq!(got, want);
    let second = diff(&mut r, &f.points[0].0, 1, 2).expect("pages");
    assert_eq!(second.results.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["orders/00007", "orders/01500"]);
    let one_step = diff(&mut r, &f.points[1].0, 0, 100).expect("diffs");
    assert_eq!(one_step.results.len(), 3, "{:?}", one_step.results);
}

#[test]
fn a_damaged_frame_is_a_checksum_mismatch_naming_its_file_never_a_wrong_document() {
    let f = fixture(None);
    let full = std::path::Path::new(&f.location).join(&f.points[0].0).join("documents-0001.zst");
    let mut bytes = std::fs::read(&full).expect("reads");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&full, bytes).expect("writes");
    let mut r = reader(&f, &f.points[0].0, None).expect("opens");
    let mut mismatches = 0;
    for i in (0..3000).step_by(7) {
        match get(&mut r, &format!("orders/{i:05}")) {
            Ok(Ok(found)) => assert_eq!(found.body, body(i, 1), "a damaged set answered a wrong document"),
            Ok(Err(message)) => panic!("orders/{i:05} not found: {message}"),
            Err(e) => {
                assert_eq!(e.code(), rookery_types::ErrorCode::ChecksumMismatch, "{e}");
                assert!(e.to_string().contains("documents-0001.zst"), "{e}");
                mismatches += 1;
            }
        }
    }
    assert!(mismatches > 0, "no lookup reached the damaged frame");
}

/// The incrementals' index blocks carry filters of their ids, and every
/// top names each frame's first id (format 6): a lookup reads nothing of an
/// incremental that does not hold its id, and in one that does, only the
/// frame that holds it (no index block). The test damages both
/// incrementals' index and documents files: ids only the full set holds
/// still read (before filters, every lookup decoded the incrementals'
/// blocks and met the damage), and an id an incremental holds meets it.
#[test]
fn a_lookup_reads_nothing_of_an_incremental_that_does_not_hold_its_id() {
    let f = fixture(None);
    for (set_id, _) in &f.points[1..] {
        for name in ["documents-0001.idx", "documents-0001.zst"] {
            let path = std::path::Path::new(&f.location).join(set_id).join(name);
            let mut bytes = std::fs::read(&path).expect("reads");
            for byte in &mut bytes {
                *byte ^= 0x5a;
            }
            std::fs::write(&path, bytes).expect("writes");
        }
    }
    let newest = &f.points[2].0;
    let mut r = reader(&f, newest, None).expect("opens");
    let ids: Vec<String> = (100..1400).step_by(13).map(|i| format!("orders/{i:05}")).collect();
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    for (id, found) in wanted.iter().zip(get_many(&mut r, &wanted).expect("reads past the damaged incrementals")) {
        let found = found.unwrap_or_else(|m| panic!("{id}: {m}"));
        assert_eq!(found.set_id, f.points[0].0, "{id} comes from the full set");
        assert_eq!(found.body, body(id[7..].parse::<u32>().expect("a number"), 1));
    }
    let e = get(&mut r, "orders/01500").expect_err("the incremental that holds it is damaged");
    assert_eq!(e.code(), rookery_types::ErrorCode::ChecksumMismatch, "{e}");
    assert!(e.to_string().contains(&format!("{newest}/documents-0001.zst")), "{e}");
}

#[test]
fn an_encrypted_chain_needs_its_key_and_reads_with_it() {
    let secret = SetSecret::Passphrase("correct horse battery".into());
    let f = fixture(Some(&secret));
    let err = reader(&f, &f.points[2].0, None).err().expect("a key is needed");
    assert_eq!(err.code(), rookery_types::ErrorCode::EncryptionKeyRequired, "{err}");
    let wrong = SetSecret::Passphrase("wrong".into());
    assert!(reader(&f, &f.points[2].0, Some(&wrong)).is_err());
    check_points(&f, Some(&secret));
}

#[test]
fn a_selective_restore_writes_the_chosen_versions_and_keeps_every_other_write() {
    let f = fixture(None);
    let db = f.rookery.catalog().get("Db").expect("db");
    let store = db.store();
    store.put("orders/00010", b"{\"Live\":true}", None).expect("puts");
    store.put("orders/00011", b"{\"Live\":true}", None).expect("puts");
    let request = |ids: &[&str], mode| RestoreDocumentsRequest {
        backup_location: f.location.clone(),
        restore_up_to: Some(f.points[1].0.clone()),
        ids: Some(ids.iter().map(|s| (*s).to_string()).collect()),
        mode,
        ..Default::default()
    };
    // At point 1: 00005 is version 2, 00007 deleted, 00010 version 1.
    let done = f
        .rookery
        .start_restore_documents("Db", &request(&["orders/00005", "orders/00007", "orders/00010", "nope"], RestoreDocumentsMode::Skip))
        .expect("starts")
        .wait()
        .expect("restores");
    assert_eq!((done.restored, done.skipped, done.not_found), (1, 1, 2), "00005 was deleted live: created; 00010 exists: skipped");
    assert_eq!(store.get("orders/00005").expect("reads").expect("restored").body, body(5, 2));
    assert_eq!(store.get("orders/00010").expect("reads").expect("kept").body, b"{\"Live\":true}");
    let done = f
        .rookery
        .start_restore_documents("Db", &request(&["orders/00010"], RestoreDocumentsMode::Overwrite))
        .expect("starts")
        .wait()
        .expect("restores");
    assert_eq!(done.restored, 1);
    assert_eq!(store.get("orders/00010").expect("reads").expect("restored").body, body(10, 1));
    assert_eq!(store.get("orders/00011").expect("reads").expect("untouched").body, b"{\"Live\":true}");
    let status =
        crate::jobs::read_status(&f.rookery.catalog().get("Db").expect("db"), rookery_types::RESTORE_DOCUMENTS_STATUS_ID).expect("status");
    assert_eq!((status.restored, status.success), (Some(1), true));
    // A prefix, into a new database.
    let into_new = RestoreDocumentsRequest {
        backup_location: f.location.clone(),
        starts_with: Some("orders/000".into()),
        database_name: Some("Copy".into()),
        ..Default::default()
    };
    let done = f.rookery.start_restore_documents("Db", &into_new).expect("starts").wait().expect("restores");
    let want = f.points[2].1.keys().filter(|k| k.starts_with("orders/000")).count() as u64;
    assert_eq!(done.restored, want);
    // Bad requests change nothing.
    let both = RestoreDocumentsRequest { starts_with: Some("a".into()), ..request(&["x"], RestoreDocumentsMode::Skip) };
    assert_eq!(f.rookery.start_restore_documents("Db", &both).err().expect("refused").code(), rookery_types::ErrorCode::InvalidRequest);
}

#[test]
fn a_chain_on_a_snapshot_set_reads_its_base_from_the_snapshot_s_own_files() {
    let f = fixture_of(None, true);
    check_points(&f, None);
    let mut r = reader(&f, &f.points[2].0, None).expect("opens");
    let page = diff(&mut r, &f.points[0].0, 0, 100).expect("diffs");
    assert_eq!(page.results.len(), 4, "{:?}", page.results);
    assert!(get(&mut r, "Raven/Backup/Status").expect("reads").is_err(), "status documents are not the database's documents");
    // Without a scratch folder such a chain is refused, and no scratch folder outlives its reader.
    let location = location_from_cli(&f.location).expect("location");
    let refused = open(&location, PointChoice::default()).err().expect("refused");
    assert_eq!(refused.code(), rookery_types::ErrorCode::InvalidRequest, "{refused}");
    drop(r);
    let left: Vec<_> = std::fs::read_dir(&f.rookery.config().data_dir)
        .expect("lists")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(point::SCRATCH_PREFIX))
        .collect();
    assert!(left.is_empty(), "scratch folders left: {left:?}");
}

#[test]
fn a_compacted_set_reads_as_the_chain_it_folds() {
    let f = fixture(None);
    let options = crate::backup::compact::CompactOptions::default();
    let compacted = f.rookery.start_compaction(&f.location, None, &options).expect("starts").wait().expect("compacts").set_id;
    let mut r = reader(&f, &compacted, None).expect("opens");
    assert_eq!(r.chain().len(), 1, "a compacted set starts its own chain");
    let model = &f.points[2].1;
    let mut listed = Vec::new();
    loop {
        let page = list(&mut r, "", listed.len(), 1000).expect("lists");
        let n = page.results.len();
        listed.extend(page.results.into_iter().map(|d| d.id));
        if n < 1000 {
            break;
        }
    }
    assert_eq!(listed, model.keys().cloned().collect::<Vec<_>>());
    assert_eq!(get(&mut r, "orders/00007").expect("reads").expect("found").body, body(7, 3));
}

#[test]
fn a_selective_restore_under_concurrent_writes_keeps_every_write_it_did_not_make() {
    let f = fixture(None);
    let db = f.rookery.catalog().get("Db").expect("db");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut written = BTreeMap::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || n < 200 {
                // Ids the restore selects (every third) and ids it does not.
                let id = format!("orders/{:05}", (n * 7) % 3000);
                let body = format!(r#"{{"Writer":{n}}}"#).into_bytes();
                db.store().put(&id, &body, None).expect("writes");
                written.insert(id, body);
                n += 1;
            }
            written
        })
    };
    let request = RestoreDocumentsRequest {
        backup_location: f.location.clone(),
        restore_up_to: Some(f.points[0].0.clone()),
        ids: Some((0..3000).step_by(3).map(|i| format!("orders/{i:05}")).collect()),
        mode: RestoreDocumentsMode::Skip,
        ..Default::default()
    };
    let done = f.rookery.start_restore_documents("Db", &request).expect("starts").wait().expect("restores");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().expect("the writer");
    assert_eq!(done.restored + done.skipped + done.not_found, 1000);
    // Skip never writes over a document: every id the writer wrote holds its last write.
    for (id, body) in &written {
        assert_eq!(&db.store().get(id).expect("reads").expect("exists").body, body, "{id}");
    }
}
