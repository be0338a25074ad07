"""Schemathesis hooks of Rookery's own.

- Every error answer has the JSON error shape (a check).
- A backup capped far below the disk's speed (`MaxBytesPerSecond: 1`)
  holds the server's backup slot for hours, and every later backup of the
  run would only get 409: a cap below 1 MiB/s is sent as 1 MiB/s (the
  value's checks, 0 and the wrong types, are fuzzed as generated).
- The run keeps its own credentials for its whole length: a generated
  request that would change or delete the user the run signs in as
  (schemathesis learns the name from `GET /auth/me`) is sent for another
  user instead. Changing one's own password is allowed to anyone; a run that
  did it would only ever get 401 afterwards and fuzz nothing more.
- Likewise the fixtures stay: deleting the fixture database or its task is
  sent for another name, so later requests reach past 404.
- Half of the schema-valid requests (chosen by a hash of the request, so a seed
  still replays the same run) are made to reach the operation's work: what
  no schema can say is set to what the fixtures hold (the fixture location
  and database, a cron that parses, one secret or none, a new database name
  for a restore, a dump for an import). Generated data alone gets 400 from
  these operations nearly every time (both secrets, a cron of zeros, a
  location outside the roots), so without this the run never backs up,
  restores, compacts, copies or imports anything; the other half stays as
  generated and tests the refusals.
"""
import itertools
import json
import os
import zlib

import schemathesis

RUN_USER = os.environ.get("FUZZ_USER", "fuzz")
# (operation path, parameter, value) that a request must not change or delete.
PROTECTED = [
    ("/admin/users/{name}", "name", RUN_USER),
    ("/docs/{id}", "id", "order-1"),
    ("/databases/{db}/docs/{id}", "id", "order-1"),
    ("/admin/databases/{name}", "name", "Walk"),
    ("/admin/backup/tasks/{name}", "name", "nightly"),
    ("/databases/{db}/admin/backup/tasks/{name}", "name", "nightly"),
    ("/admin/notifications/{name}", "name", "ops"),
]


@schemathesis.check
def json_error_shape(ctx, response, case):
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content or b"null")
    except ValueError as e:
        raise AssertionError(f"{response.status_code} answer is not JSON: {response.content[:200]!r}") from e
    if not (isinstance(body, dict) and isinstance(body.get("Error"), str) and isinstance(body.get("Message"), str) and body["Message"]):
        raise AssertionError(f"{response.status_code} answer lacks the {{Error, Message}} shape: {body!r}")
    return None


SLOWEST_CAP = 1 << 20

# The fixtures scripts/fuzz-api.sh made.
LOCATION = os.environ.get("FUZZ_LOCATION", "")
SCRATCH = os.environ.get("FUZZ_SCRATCH", "")
DUMP = os.environ.get("FUZZ_DUMP", "")
SETS = os.environ.get("FUZZ_SETS", "").split()
SECRET_FIELDS = ("BackupEncryptionKey", "BackupPassphrase", "EncryptionKey", "DatabaseLocation", "S3", "S3From", "S3To")
SECRET_HEADERS = ("Rookery-Backup-Passphrase", "Rookery-Backup-Encryption-Key", "Rookery-Encryption-Key")
CRON = "0 2 * * *"
FRESH = itertools.count(1)


def chosen(case):
    """Half of the schema-valid requests, the same half for the same
    generated data (a request generated to break the schema stays as it is:
    its refusal is what it tests)."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return False
    if not all(component.mode.is_positive for component in meta.components.values()):
        return False
    key = repr((case.method, case.operation.path, case.path_parameters, case.query, case.body if not isinstance(case.body, bytes) else len(case.body)))
    return zlib.crc32(key.encode()) % 2 == 0


def reach(case):
    """Makes a generated request one that reaches the operation's work."""
    path = case.operation.path
    if case.path_parameters and "db" in case.path_parameters:
        case.path_parameters["db"] = "Walk"
    for name in SECRET_HEADERS:
        if case.headers:
            case.headers.pop(name, None)
    query = case.query if isinstance(case.query, dict) else None
    reads_sets = path.startswith("/admin/backup/documents") or path == "/admin/backup/diff"
    if reads_sets and LOCATION:
        case.query = query = dict(query or {}, location=LOCATION, database="Walk")
    if query is not None:
        if "cron" in query:
            query["cron"] = CRON
        query.pop("upTo", None)
        if path == "/admin/backup/diff" and len(SETS) == 2:
            query["from"], query["to"] = SETS
    body = case.body
    if path.endswith("/smuggler/import") and DUMP:
        with open(DUMP, "rb") as f:
            case.body = f.read()
        return
    if not isinstance(body, dict):
        return
    for name in SECRET_FIELDS:
        body.pop(name, None)
    for name in ("BackupLocation", "From"):
        if name in body and LOCATION:
            body[name] = LOCATION
    if "To" in body and SCRATCH:
        body["To"] = f"{SCRATCH}/copy-{next(FRESH)}"
    if "SourceDatabaseName" in body or path in ("/admin/backup/compact", "/admin/restore") or path.endswith("/restore/documents"):
        body["SourceDatabaseName"] = "Walk"
    for name in ("UpTo", "RestoreUpTo"):
        body.pop(name, None)
    if path.startswith("/admin/restore") and path != "/admin/restore/documents":
        body["DatabaseName"] = f"Restored-{next(FRESH)}"
    if path.endswith("/restore/documents"):
        body.pop("DatabaseName", None)
        body.pop("StartsWith", None)
        body["Ids"] = ["order-1"]
    if path.endswith("/backup/tasks/{name}"):
        body["FullBackupFrequency"] = CRON
        body.pop("IncrementalBackupFrequency", None)
        body["TimeZone"] = "UTC"
        if LOCATION:
            body["BackupLocation"] = LOCATION
        body.pop("Destinations", None)
    if path == "/auth/login":
        body["Username"], body["Password"] = RUN_USER, os.environ.get("FUZZ_PASSWORD", "")


@schemathesis.hook
def before_call(context, case, kwargs):
    if chosen(case):
        reach(case)
    body = case.body
    if isinstance(body, dict):
        cap = body.get("MaxBytesPerSecond")
        if isinstance(cap, int) and not isinstance(cap, bool) and 0 < cap < SLOWEST_CAP:
            body["MaxBytesPerSecond"] = SLOWEST_CAP
    changes = case.method.upper() in ("PUT", "DELETE")
    for path, parameter, value in PROTECTED:
        current = (case.path_parameters or {}).get(parameter)
        deletes_a_document = path.endswith("/docs/{id}") and case.method.upper() == "DELETE"
        if (changes if not path.endswith("/docs/{id}") else deletes_a_document) and case.operation.path == path and isinstance(current, str) and current.lower() == value.lower():
            case.path_parameters[parameter] = f"{current}-other"
