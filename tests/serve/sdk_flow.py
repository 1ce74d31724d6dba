"""Drives `batchllm-host serve` with the official OpenAI Python SDK, as a
tenant's code would: unchanged SDK calls against base_url=<server>/v1.

    sdk_flow.py BASE_URL KEY SCENARIO JOBS_FILE [OTHER_KEY]

Scenarios:
  complete  files.create -> batches.create -> poll retrieve -> files.content
            of the output and error files; list and pagination.
  cancel    the same, then batches.cancel while the batch runs; polls until
            `cancelled` and reads what the batch wrote.
  errors    what a client gets wrong: a wrong key, another tenant's batch
            and file (404 through OTHER_KEY), an endpoint the plugin cannot
            serve, a missing file, an unknown URL.

Prints one JSON object (the facts the Rust test checks) on stdout; any
failed expectation here raises, and the exit code is non-zero.
"""

import json
import sys
import time

import openai
from openai import OpenAI

END = {"completed", "failed", "expired", "cancelled"}


def client(base_url, key):
    # The SDK's own retries stay on (the default, 2): the server's 429s carry
    # retry-after, and x-should-retry where waiting cannot help.
    return OpenAI(base_url=base_url, api_key=key, timeout=60)


def poll(c, batch_id, until, timeout=120):
    seen = []
    deadline = time.time() + timeout
    while True:
        b = c.batches.retrieve(batch_id)
        if not seen or seen[-1] != b.status:
            seen.append(b.status)
        if until(b):
            return b, seen
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {batch_id}; statuses {seen}, last {b.model_dump_json()}")
        time.sleep(0.05)


def lines(c, file_id):
    if file_id is None:
        return []
    text = c.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def upload_and_create(c, jobs, endpoint="/v1/chat/completions"):
    with open(jobs, "rb") as f:
        up = c.files.create(file=f, purpose="batch")
    assert up.object == "file" and up.purpose == "batch" and up.bytes > 0, up
    assert c.files.retrieve(up.id).id == up.id
    b = c.batches.create(
        input_file_id=up.id, endpoint=endpoint, completion_window="24h", metadata={"run": "sdk-test"}
    )
    assert b.status == "validating", b.status
    assert b.input_file_id == up.id and b.metadata == {"run": "sdk-test"}
    return up, b


def complete(c, jobs):
    up, b = upload_and_create(c, jobs)
    b, seen = poll(c, b.id, lambda b: b.status in END)
    out = lines(c, b.output_file_id)
    err = lines(c, b.error_file_id)
    # The SDK's pagination: list everything with limit=1 pages.
    listed = [x.id for x in c.batches.list(limit=1)]
    files = [x.id for x in c.files.list()]
    page = c.batches.list(limit=1)
    return {
        "batch": b.model_dump(),
        "statuses": seen,
        "output": out,
        "errors": err,
        "listed_batches": listed,
        "first_page_has_more": page.has_more,
        "files": files,
        "input_file": up.id,
    }


def cancel(c, jobs):
    up, b = upload_and_create(c, jobs)
    b, _ = poll(c, b.id, lambda b: b.status == "in_progress" and b.request_counts.completed >= 3)
    cancelled = c.batches.cancel(b.id)
    assert cancelled.status in ("cancelling", "cancelled"), cancelled.status
    b, seen = poll(c, b.id, lambda b: b.status in END)
    again = c.batches.cancel(b.id)
    assert again.status == "cancelled", again.status
    return {
        "batch": b.model_dump(),
        "statuses": seen,
        "cancel_answer": cancelled.status,
        "output": lines(c, b.output_file_id),
        "errors": lines(c, b.error_file_id),
    }


def expect(exc, call):
    try:
        call()
    except exc as e:
        return {"status": e.status_code, "body": e.body}
    raise SystemExit(f"expected {exc.__name__}")


def errors(c, jobs, base_url, other_key):
    other = client(base_url, other_key)
    up, b = upload_and_create(c, jobs)
    facts = {
        "wrong_key": expect(openai.AuthenticationError, lambda: client(base_url, "sk-wrong").batches.list()),
        "other_batch": expect(openai.NotFoundError, lambda: other.batches.retrieve(b.id)),
        "other_cancel": expect(openai.NotFoundError, lambda: other.batches.cancel(b.id)),
        "other_file": expect(openai.NotFoundError, lambda: other.files.retrieve(up.id)),
        "other_content": expect(openai.NotFoundError, lambda: other.files.content(up.id)),
        "other_delete": expect(openai.NotFoundError, lambda: other.files.delete(up.id)),
        "other_uses_file": expect(
            openai.NotFoundError,
            lambda: other.batches.create(
                input_file_id=up.id, endpoint="/v1/chat/completions", completion_window="24h"
            ),
        ),
        "bad_endpoint": expect(
            openai.BadRequestError,
            lambda: c.batches.create(input_file_id=up.id, endpoint="/v1/moderations", completion_window="24h"),
        ),
        "missing_file": expect(
            openai.NotFoundError,
            lambda: c.batches.create(
                input_file_id="file-doesnotexist", endpoint="/v1/chat/completions", completion_window="24h"
            ),
        ),
        "unknown_url": expect(openai.NotFoundError, lambda: c.get("/nothing/here", cast_to=object)),
        "other_list_empty": [x.id for x in other.batches.list()] == [],
    }
    poll(c, b.id, lambda b: b.status in END)
    deleted = c.files.delete(up.id)
    facts["deleted"] = deleted.deleted
    facts["after_delete"] = expect(openai.NotFoundError, lambda: c.files.retrieve(up.id))
    return facts


def main():
    base_url, key, scenario, jobs = sys.argv[1:5]
    other_key = sys.argv[5] if len(sys.argv) > 5 else None
    c = client(base_url, key)
    if scenario == "complete":
        facts = complete(c, jobs)
    elif scenario == "cancel":
        facts = cancel(c, jobs)
    elif scenario == "errors":
        facts = errors(c, jobs, base_url, other_key)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(facts, default=str))


if __name__ == "__main__":
    main()
