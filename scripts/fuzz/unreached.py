"""Lists the operations a schemathesis run never reached: every answer it
got was 401/403, or every answer was 404, or it never answered 2xx (it
refused every request, so its work was never done). Reads the run's requests (a HAR
file) and the description (openapi.json) to put each request to its
operation. Cancels are held to the same rule: the run's hooks start a job
of their kind before each one (scripts/fuzz/rookery_checks.py).

Usage: unreached.py REQUESTS.har OPENAPI.json"""
import json
import re
import sys
from collections import defaultdict
from urllib.parse import unquote, urlsplit

har = json.load(open(sys.argv[1], encoding="utf-8"))
spec = json.load(open(sys.argv[2], encoding="utf-8"))


def matcher(template):
    parts = []
    for piece in re.split(r"(\{[^}]+\})", template):
        if piece == "{id}":
            parts.append(".+")  # a document id may hold '/'
        elif piece.startswith("{"):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(piece))
    return re.compile("^" + "".join(parts) + "$")


operations = []
for template, item in spec["paths"].items():
    for method in ("get", "put", "post", "delete", "patch"):
        if method in item:
            operations.append((method.upper(), template, matcher(template)))
# The most specific template first (fewest parameters, longest literal text).
operations.sort(key=lambda op: (op[1].count("{"), -len(op[1])))

statuses = defaultdict(set)
for entry in har["log"]["entries"]:
    method = entry["request"]["method"].upper()
    path = unquote(urlsplit(entry["request"]["url"]).path)
    for op_method, template, pattern in operations:
        if op_method == method and pattern.match(path):
            statuses[(method, template)].add(entry["response"]["status"])
            break

for method, template, _ in sorted(operations, key=lambda op: (op[1], op[0])):
    seen = statuses.get((method, template), set())
    # The run reads the description itself before it starts.
    if template == "/openapi.json":
        continue
    if not seen:
        print(f"{method} {template}: never requested")
    elif seen <= {401, 403}:
        print(f"{method} {template}: only {sorted(seen)}")
    elif seen == {404}:
        print(f"{method} {template}: only 404")
    elif not any(200 <= status < 300 for status in seen):
        print(f"{method} {template}: never 2xx, only {sorted(seen)}")
