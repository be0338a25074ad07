//! The backup sets in a location (`GET /admin/backup/sets`), shown on the
//! Backup page (history) and the Restore page (points in time).

use leptos::prelude::*;

use super::status::{documents, format_count, format_time};
use crate::client::{encode_query, format_bytes, get_json, ApiFailure};
use rookery_types::{BackupListing, BackupSetInfo};

/// The sets of a chosen location; `None` when no location is chosen yet.
pub type ListingResult = Result<Option<BackupListing>, ApiFailure>;

/// Lists and verifies the sets in `location`.
///
/// # Errors
/// `InvalidBackupLocation` and any other refusal of the server.
pub async fn fetch_listing(location: String) -> Result<BackupListing, ApiFailure> {
    get_json(&format!("/admin/backup/sets?location={}", encode_query(&location))).await
}

/// Checks a path typed by the user before it is sent: it must be absolute.
///
/// # Errors
/// A sentence for the user, naming `what` ("backup location").
pub fn check_absolute(path: &str, what: &str) -> Result<(), String> {
    let path = path.trim();
    if path.is_empty() {
        return Err(format!("Enter a {what}: an absolute folder on the server, such as /var/backups/northwind."));
    }
    let bytes = path.as_bytes();
    let windows_drive = bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && matches!(bytes[2], b'\\' | b'/');
    if path.starts_with('/') || path.starts_with("\\\\") || windows_drive {
        Ok(())
    } else {
        Err(format!("The {what} must be an absolute folder on the server (starting with /); '{path}' is a relative path."))
    }
}

/// Checks a backup location typed by the user: an absolute folder on the
/// server, or `s3://bucket/prefix` in object storage.
///
/// # Errors
/// A sentence for the user.
pub fn check_backup_location(location: &str) -> Result<(), String> {
    let location = location.trim();
    if let Some(rest) = location.strip_prefix("s3://") {
        return if rest.is_empty() || rest.starts_with('/') {
            Err(format!("'{location}' names no bucket: use s3://bucket/prefix."))
        } else {
            Ok(())
        };
    }
    check_absolute(location, "backup location").map_err(|m| format!("{m} Object storage locations are written s3://bucket/prefix."))
}

/// Every set of every chain in the listing with its database's name, newest first.
pub fn newest_first(listing: &BackupListing) -> Vec<(String, BackupSetInfo)> {
    let mut sets: Vec<(String, BackupSetInfo)> =
        listing.chains.iter().flat_map(|chain| chain.sets.iter().map(|set| (chain.database_name.clone(), set.clone()))).collect();
    sets.sort_by(|a, b| (&b.1.created, &b.1.set_id).cmp(&(&a.1.created, &a.1.set_id)));
    sets
}

/// A short description of a set for a `<select>`: `2026-11-26 05:00:03 UTC · Full · 3 documents`.
pub fn set_label(set: &BackupSetInfo) -> String {
    let changes = match set.deletion_count {
        0 => documents(set.document_count),
        1 => format!("{}, 1 deletion", documents(set.document_count)),
        n => format!("{}, {} deletions", documents(set.document_count), format_count(n)),
    };
    let problems = if set.verified { "" } else { " · does not verify" };
    format!("{} · {} · {changes}{problems}", format_time(&set.created), set.kind)
}

/// The sets of a location as a table (`aria-label="Backup sets"`), newest
/// first; with `on_compact`, each incremental has a "Compact up to here"
/// button; with `browse`, each logical set a "Browse" link (its documents
/// read without restoring them).
#[component]
pub fn BackupSetsTable(
    listing: BackupListing,
    #[prop(optional)] on_compact: Option<Callback<String>>,
    #[prop(optional)] browse: bool,
) -> impl IntoView {
    let sets = newest_first(&listing);
    let problems = listing.problems.clone();
    let location = listing.location.clone();
    let empty = sets.is_empty();
    let actions = on_compact.is_some() || browse;
    let browse_in = browse.then(|| listing.location.clone());
    let rows = sets
        .into_iter()
        .map(|(database, set)| {
            let browse = browse_in.clone();
            view! { <SetRow database set on_compact browse actions/> }
        })
        .collect_view();
    view! {
        {(!empty).then(|| view! {
            <div class="table-wrap">
                <table class="table" aria-label="Backup sets">
                    <thead>
                        <tr>
                            <th>"Created"</th>
                            <th>"Kind"</th>
                            <th>"Set"</th>
                            <th>"Database"</th>
                            <th class="num">"Documents"</th>
                            <th class="num">"Deletions"</th>
                            <th class="num">"Size"</th>
                            <th>"Integrity"</th>
                            {actions.then(|| view! { <th><span class="visually-hidden">"Actions"</span></th> })}
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        })}
        {empty.then(|| view! { <p class="muted empty">"No backup set in " <span class="mono">{location}</span> " yet."</p> })}
        {(!problems.is_empty()).then(|| view! {
            <div class="banner banner-warn sets-problems">
                <ul>{problems.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}</ul>
            </div>
        })}
    }
}

/// One set's row: when, kind, id, database, counts, size, integrity, and
/// "Compact up to here" for an incremental (with `on_compact`), "Browse"
/// for a logical set (with `browse`, the location).
#[component]
fn SetRow(
    database: String,
    set: BackupSetInfo,
    on_compact: Option<Callback<String>>,
    browse: Option<String>,
    actions: bool,
) -> impl IntoView {
    let kind_class = match set.kind.as_str() {
        "Full" => "tag kind-full",
        "Snapshot" => "tag kind-snapshot",
        _ => "tag kind-incremental",
    };
    let verified = set.verified;
    let set_problems = set.problems.clone();
    let lock = set.locked_until.as_ref().map(|until| {
        let mode = set.lock_mode.map(|m| format!("{m:?}")).unwrap_or_default();
        let title = format!("S3 Object Lock ({mode}): no one can delete this set before {until}");
        view! { " " <span class="tag" title=title>{format!("Locked until {}", format_time(until))}</span> }
    });
    let compact = (set.kind == "Incremental").then_some(on_compact).flatten().map(|on_compact| {
        let id = set.set_id.clone();
        let label = format!("Compact up to {id}");
        view! {
            <button type="button" class="link" aria-label=label on:click=move |_| on_compact.run(id.clone())>"Compact up to here"</button>
        }
    });
    let browse = browse.filter(|_| set.kind != "Snapshot").map(|location| {
        let href = super::browse::browse_href(&location, &set.set_id, &database);
        let label = format!("Browse {}", set.set_id);
        view! { <a class="link" href=href aria-label=label>"Browse"</a> }
    });
    view! {
        <tr>
            <td class="nowrap">{format_time(&set.created)}</td>
            <td><span class=kind_class>{set.kind.clone()}</span></td>
            <td class="mono">{set.set_id.clone()}</td>
            <td>{database}</td>
            <td class="num">{format_count(set.document_count)}</td>
            <td class="num">{format_count(set.deletion_count)}</td>
            <td class="num">{format_bytes(set.size_bytes)}</td>
            <td>
                {if verified {
                    view! { <span class="tag ok">"Verified"</span> }.into_any()
                } else {
                    view! {
                        <span class="tag err">"Problems"</span>
                        <ul class="problems">
                            {set_problems.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}
                        </ul>
                    }
                        .into_any()
                }}
                {lock}
            </td>
            {actions.then(|| view! { <td class="actions">{browse}" "{compact}</td> })}
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_types::BackupChainInfo;

    fn set(id: &str, created: &str) -> BackupSetInfo {
        BackupSetInfo {
            set_id: id.into(),
            kind: "Full".into(),
            base_set_id: None,
            created: created.into(),
            from_etag: 0,
            to_etag: 1,
            document_count: 1200,
            deletion_count: 0,
            size_bytes: 10,
            encrypted: false,
            duration_ms: None,
            verified: true,
            problems: vec![],
            locked_until: None,
            lock_mode: None,
        }
    }

    #[test]
    fn paths_must_be_absolute() {
        assert!(check_absolute("/var/backups", "backup location").is_ok());
        assert!(check_absolute("C:\\backups", "backup location").is_ok());
        assert!(check_absolute("", "backup location").expect_err("empty").contains("Enter a backup location"));
        assert!(check_absolute("backups/x", "backup location").expect_err("relative").contains("relative"));
        assert!(check_backup_location("s3://backups/northwind").is_ok());
        assert!(check_backup_location("/var/backups").is_ok());
        assert!(check_backup_location("s3://").is_err());
        assert!(check_backup_location("backups/x").expect_err("relative").contains("s3://bucket/prefix"));
    }

    #[test]
    fn sets_are_listed_newest_first() {
        let listing = BackupListing {
            location: "/b".into(),
            chains: vec![
                BackupChainInfo {
                    database_name: "A".into(),
                    database_id: "1".into(),
                    sets: vec![set("a1", "2026-01-01T00:00:00Z"), set("a2", "2026-03-01T00:00:00Z")],
                },
                BackupChainInfo { database_name: "B".into(), database_id: "2".into(), sets: vec![set("b1", "2026-02-01T00:00:00Z")] },
            ],
            problems: vec![],
            unfinished: vec![],
        };
        let ids: Vec<String> = newest_first(&listing).into_iter().map(|(_, s)| s.set_id).collect();
        assert_eq!(ids, ["a2", "b1", "a1"]);
        assert_eq!(set_label(&listing.chains[0].sets[0]), "2026-01-01 00:00:00 UTC · Full · 1,200 documents");
    }
}
