"""Schemathesis hooks for Tripline's API tests (loaded through SCHEMATHESIS_HOOKS).

POST /v1/selectors takes NDJSON (`application/x-ndjson`), a media type schemathesis has no serializer for: a
generated string body goes on the wire as its UTF-8 bytes; any other generated value as one JSON line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return (json.dumps(value) + "\n").encode("utf-8")
