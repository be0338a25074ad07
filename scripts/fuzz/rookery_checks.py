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
"""
import json
import os

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


@schemathesis.hook
def before_call(context, case, kwargs):
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
