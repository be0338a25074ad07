"""Schemathesis checks of Rookery's own: every error answer has the JSON error shape."""
import json

import schemathesis


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
