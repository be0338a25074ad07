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
- Every schema-valid request of the coverage phase, and half of the others
  (chosen by a hash of the request, so a seed still replays the same run),
  are made to reach the operation's work: what no schema can say is set to
  what the fixtures hold (the fixture location
  and database, a cron that parses, one secret or none, a new database name
  for a restore, a dump for an import). Generated data alone gets 400 from
  these operations nearly every time (both secrets, a cron of zeros, a
  location outside the roots), so without this the run never backs up,
  restores, compacts, copies or imports anything; the other half stays as
  generated and tests the refusals.
- A cancel only does its work while a job of its kind runs (otherwise it
  answers 404, as it must): before each schema-valid cancel, the run starts
  such a job itself and sends the cancel while it runs, then waits for the
  job to end (`Canceled`); a job that outlives its cancel fails the run.
  The jobs are held by what they are given, not by timing: a backup capped
  at 1 byte a second, an import whose body is held open, and a restore,
  compaction, copy or restore of documents of a set large enough to outlast
  the cancel's arrival (the `Big` fixture).
"""
import base64
import itertools
import json
import os
import threading
import time
import zlib

import requests

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
SYSTEM_LOCATION = os.environ.get("FUZZ_SYSTEM_LOCATION", "")
BIG_LOCATION = os.environ.get("FUZZ_BIG_LOCATION", "")
URL = os.environ.get("FUZZ_URL", "")
HOLD_FAILURES = os.environ.get("FUZZ_HOLD_FAILURES", "")
AUTH = "Basic " + base64.b64encode(f"{RUN_USER}:{os.environ.get('FUZZ_PASSWORD', '')}".encode()).decode()


def chosen(case):
    """Every schema-valid request of the coverage phase (a handful per
    operation, each judged on its own), and half of those of the other
    phases, the same half for the same generated data. A request generated
    to break the schema stays as it is: its refusal is what it tests."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return False
    if not all(component.mode.is_positive for component in meta.components.values()):
        return False
    key = repr((case.method, case.operation.path, case.path_parameters, case.query, case.body if not isinstance(case.body, bytes) else len(case.body)))
    return meta.phase.name.value == "coverage" or zlib.crc32(key.encode()) % 2 == 0


def reach(case, kwargs):
    """Makes a generated request one that reaches the operation's work
    (`kwargs`: the request as it will be sent, its headers already made)."""
    path = case.operation.path
    if case.path_parameters and "db" in case.path_parameters:
        case.path_parameters["db"] = "Walk"
    for headers in (case.headers, kwargs.get("headers")):
        for name in SECRET_HEADERS:
            if headers:
                headers.pop(name, None)
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
    if path.endswith("/docs/{id}") and case.method.upper() == "DELETE":
        delete_a_fresh_document(case, kwargs)
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
        body.pop("RecoveryPointObjective", None)
    if path == "/auth/login":
        body["Username"], body["Password"] = RUN_USER, os.environ.get("FUZZ_PASSWORD", "")


def delete_a_fresh_document(case, kwargs):
    """A delete of a document made for it, without a generated If-Match (an
    etag no schema can know): the fixtures' documents stay for the rest of
    the run, and the delete still reaches its work."""
    base = "/databases/Walk" if case.operation.path.startswith("/databases/") else ""
    fresh = f"fresh-{next(FRESH)}"
    if URL and _call("PUT", f"{base}/docs/{fresh}", {"Fresh": True}).status_code in (200, 201):
        case.path_parameters["id"] = fresh
    for headers in (case.headers, kwargs.get("headers")):
        if headers:
            headers.pop("If-Match", None)


@schemathesis.hook
def before_call(context, case, kwargs):
    if chosen(case):
        reach(case, kwargs)
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


# The job each cancel stops: (its status document, how to start one held).
# `base` is "" (the system database) or "/databases/{db}".
def _backup(base):
    location = LOCATION if base else SYSTEM_LOCATION
    return "POST", f"{base}/admin/backup", {"BackupLocation": location, "MaxBytesPerSecond": 1}


def _restore(base):
    return "POST", "/admin/restore", {"BackupLocation": BIG_LOCATION, "DatabaseName": f"Held-{next(FRESH)}"}


def _compaction(base):
    return "POST", "/admin/backup/compact", {"BackupLocation": BIG_LOCATION}


def _restore_documents(base):
    body = {"BackupLocation": BIG_LOCATION, "SourceDatabaseName": "Big", "StartsWith": "big/"}
    return "POST", f"{base}/admin/restore/documents", body


def _copy(base):
    return "POST", "/admin/backup/copy", {"From": BIG_LOCATION, "To": f"{SCRATCH}/held-{next(FRESH)}"}


HOLDS = {
    "/admin/backup/copy/cancel": ("Raven/Copy/Status", _copy),
    "/admin/backup/cancel": ("Raven/Backup/Status", _backup),
    "/admin/restore/cancel": ("Raven/Restore/Status", _restore),
    "/admin/backup/compact/cancel": ("Raven/Compact/Status", _compaction),
    "/admin/restore/documents/cancel": ("Raven/RestoreDocuments/Status", _restore_documents),
    "/smuggler/import/cancel": ("Raven/Smuggler/Status", None),
}
HOLD_LIMIT = 60.0


def _call(method, path, body=None):
    return requests.request(method, URL + path, json=body, headers={"Authorization": AUTH}, timeout=HOLD_LIMIT)


def _status(base, document):
    answer = _call("GET", f"{base}/docs/{document}")
    return answer.json() if answer.status_code == 200 else {}


def _until(what, probe):
    """Polls `probe` until it holds; a wait that runs out is written to
    FUZZ_HOLD_FAILURES (which fails the run) and raised."""
    deadline = time.monotonic() + HOLD_LIMIT
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.02)
    message = f"not seen: {what} within {HOLD_LIMIT:.0f} s"
    if HOLD_FAILURES:
        with open(HOLD_FAILURES, "a", encoding="utf-8") as out:
            out.write(message + "\n")
    raise AssertionError(message)


class _HeldImport:
    """An import whose body stays open (a header, then nothing) until released."""

    def __init__(self, base):
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._send, args=(base,), daemon=True)
        self.thread.start()

    def _body(self):
        yield json.dumps({"FormatVersion": 1, "ServerVersion": "0.1.0", "Database": "Held", "Exported": "2026-12-04T00:00:00.000Z"}).encode() + b"\n"
        self.release.wait(HOLD_LIMIT)

    def _send(self, base):
        try:
            requests.post(URL + f"{base}/smuggler/import", data=self._body(), headers={"Authorization": AUTH}, timeout=HOLD_LIMIT)
        except requests.RequestException:
            pass  # the server may close the stream it stopped reading

    def end(self):
        self.release.set()
        self.thread.join(HOLD_LIMIT)


# The job held for the cancel being sent (the run is sequential; the hooks
# may run more than once for one request, and one job is enough).
HELD = []


def hold(case):
    """Starts the job a cancel stops, and returns once it runs (None when it
    could not start: another job of the kind runs, or the database is not a
    fixture's)."""
    path = case.operation.path
    base = ""
    if path.startswith("/databases/{db}"):
        db = (case.path_parameters or {}).get("db")
        if db != "Walk":
            return None
        base, path = "/databases/Walk", path[len("/databases/{db}"):]
    if path not in HOLDS or not URL:
        return None
    document, start = HOLDS[path]
    if start is None:
        was = _status(base, document).get("Started")
        job = _HeldImport(base)
        _until("a held import running", lambda: (lambda st: st.get("IsRunning") is True and st.get("Started") != was)(_status(base, document)))
        return base, document, job
    method, route, body = start(base)
    if route.endswith("/admin/backup") and not body["BackupLocation"]:
        return None
    answer = _call(method, route, body)
    if answer.status_code != 202:
        return None
    return base, document, None


@schemathesis.hook("before_call")
def hold_a_job_to_cancel(context, case, kwargs):
    if case.operation.path.endswith("/cancel") and chosen_or_plain(case) and not HELD:
        held = hold(case)
        if held is not None:
            HELD.append(held)


@schemathesis.hook("after_call")
def wait_for_the_canceled_job(context, case, response):
    while HELD:
        base, document, job = HELD.pop()
        if job is not None:
            job.end()
        _until(f"{document} ended after its cancel ({response.status_code})", lambda: _status(base, document).get("IsRunning") is False)


def chosen_or_plain(case):
    """A schema-valid cancel (a cancel has no body to generate wrongly)."""
    meta = getattr(case, "meta", None)
    return meta is None or meta.generation.mode.is_positive

