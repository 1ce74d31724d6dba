"""Reads one JSON string literal per stdin line (a document to parse) and
prints what src/serdejson.py makes of it: the document printed back, or
``ERR <message>``. tests/e2e/conformance.rs compares this with serde_json."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from serdejson import JsonSyntaxError, parse_json, stringify  # noqa: E402

for line in sys.stdin:
    if not line.strip():
        continue
    doc = json.loads(line)
    try:
        out = stringify(parse_json(doc))
    except JsonSyntaxError as e:
        out = "ERR %s" % e
    sys.stdout.write(json.dumps(out) + "\n")
