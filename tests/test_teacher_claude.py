"""The `anthropic` teacher against a fake Anthropic API on loopback: no network, no real key.

The fake server speaks the shapes the SDK expects (Messages, Message Batches, JSONL results) and
reads markers in the prefix to misbehave: `[429x2]` fails the first 2 attempts with HTTP 429 (any
status works), `[always529]` never succeeds, `[malformed]` / `[truncated]` give bad answers, and in
batches `[errored]` / `[expired]` / `[canceled]` give those result types.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nla_variants.common.errors import NLAError
from nla_variants.data.teachers import claude as claude_mod
from nla_variants.data.teachers.base import INSTRUCTION, parse_explanation
from nla_variants.data.teachers.claude import ClaudeTeacher

FAKE_KEY = "fake-key-3f9c2d1e-SECRET-do-not-log"
_DOC = re.compile(r"<document>(.*)</document>", re.DOTALL)
_FAIL = re.compile(r"\[(\d{3})x(\d+)\]")
_ERROR_TYPES = {
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def good_answer(prefix: str) -> str:
    """The fake model's well-formed answer for a prefix (deterministic, so tests can compare)."""
    words = re.findall(r"[A-Za-z]+", prefix) or ["nothing"]
    return f"Feature: short English prose about {words[0]}\n- The text ends after '{words[-1]}' and continues"


class FakeAnthropic:
    """State of the fake API: what it received, and how it should misbehave."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.attempts: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self.delay_s = 0.0
        self.force_status: int | None = None
        self.polls_until_end = 1  # retrieves answered in_progress before a batch ends
        self.batches: dict[str, dict[str, Any]] = {}
        self.fail_next: dict[tuple[str, str], list[int]] = {}  # (method, path) -> statuses
        self.broken_results = 0  # results downloads cut off mid-stream
        self.url = ""

    # helpers for tests
    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    def batch_polls(self, batch_id: str) -> int:
        return len(self.calls("GET", f"/v1/messages/batches/{batch_id}"))

    def message(self, params: dict[str, Any]) -> tuple[str, str]:
        """(text, stop_reason) for one request's params."""
        prefix = _DOC.search(params["messages"][0]["content"]).group(1)
        if "[malformed]" in prefix:
            return "just one line, which is not enough features", "end_turn"
        if "[truncated]" in prefix:
            return "A forum post about gardening\nThe text ends in the middle of", "max_tokens"
        return good_answer(prefix), "end_turn"

    def failure(self, params: dict[str, Any]) -> int | None:
        """A status code to fail this attempt with, or None to answer."""
        prefix = _DOC.search(params["messages"][0]["content"]).group(1)
        with self.lock:
            self.attempts[prefix] += 1
            n = self.attempts[prefix]
        if "[always529]" in prefix:
            return 529
        m = _FAIL.search(prefix)
        if m and n <= int(m.group(2)):
            return int(m.group(1))
        return None

    def message_json(self, params: dict[str, Any]) -> dict[str, Any]:
        text, stop = self.message(params)
        return {
            "id": f"msg_{len(self.requests):05d}",
            "type": "message",
            "role": "assistant",
            "model": params["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 40,
                "output_tokens": 25,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 210,
            },
        }

    def batch_json(self, batch_id: str) -> dict[str, Any]:
        b = self.batches[batch_id]
        ended = b["polls"] > self.polls_until_end
        n = len(b["requests"])
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else n,
                "succeeded": n if ended else 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z",
            "ended_at": "2026-01-01T00:05:00Z" if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    def result_line(self, request: dict[str, Any]) -> dict[str, Any]:
        content = request["params"]["messages"][0]["content"]
        for kind in ("errored", "expired", "canceled"):
            if f"[{kind}]" in content:
                result: dict[str, Any] = {"type": kind}
                if kind == "errored":
                    result["error"] = {
                        "type": "error",
                        "error": {"type": "invalid_request_error", "message": "bad request"},
                    }
                return {"custom_id": request["custom_id"], "result": result}
        message = self.message_json(request["params"])
        return {
            "custom_id": request["custom_id"],
            "result": {"type": "succeeded", "message": message},
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(
        self, status: int, body: bytes, ctype: str = "application/json", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", "req_fake")
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: int) -> None:
        kind = _ERROR_TYPES.get(status, "not_found_error" if status == 404 else "api_error")
        body = {
            "type": "error",
            "error": {"type": kind, "message": f"fake {kind}"},
            "request_id": "req_fake",
        }
        # retry-after-ms is read before retry-after by the SDK: 1 ms keeps backoff out of test time.
        self._send(status, json.dumps(body).encode(), retry_after_ms="1")

    def _handle(self, method: str) -> None:
        state: FakeAnthropic = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path = self.path.split("?")[0]
        with state.lock:
            state.requests.append(
                {
                    "method": method,
                    "path": path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
        if state.force_status is not None:
            return self._error(state.force_status)
        if self.headers.get("Authorization") != f"Bearer {FAKE_KEY}":
            return self._error(401)

        with state.lock:
            queue = state.fail_next.get((method, path))
            status = queue.pop(0) if queue else None
        if status is not None:
            return self._error(status)

        if method == "POST" and path == "/v1/messages":
            with state.lock:
                state.active += 1
                state.max_active = max(state.max_active, state.active)
            try:
                time.sleep(state.delay_s)
                status = state.failure(body)
                if status is not None:
                    return self._error(status)
                return self._json(200, state.message_json(body))
            finally:
                with state.lock:
                    state.active -= 1

        if method == "POST" and path == "/v1/messages/batches":
            with state.lock:
                batch_id = f"msgbatch_{len(state.batches):04d}"
                state.batches[batch_id] = {"requests": body["requests"], "polls": 0}
            return self._json(200, state.batch_json(batch_id))

        m = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", path)
        if method == "GET" and m:
            batch_id, results = m.group(1), m.group(2)
            if batch_id not in state.batches:
                return self._error(404)
            if results:
                lines = [
                    json.dumps(state.result_line(r)) for r in state.batches[batch_id]["requests"]
                ]
                body = ("\n".join(reversed(lines)) + "\n").encode()
                if state.broken_results > 0:  # promise the full body, send half, hang up
                    state.broken_results -= 1
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return None
                return self._send(200, body, "application/binary")
            with state.lock:
                state.batches[batch_id]["polls"] += 1
            return self._json(200, state.batch_json(batch_id))
        return self._error(404)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    state = FakeAnthropic()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_teacher(fake: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    made: list[ClaudeTeacher] = []

    def make(**kw: Any) -> ClaudeTeacher:
        opts: dict[str, Any] = {
            "mode": "sync",
            "base_url": fake.url,
            "cache_dir": tmp_path / "cache",
            "max_retries": 3,
            "poll_interval_s": 0.01,
            "timeout_s": 60.0,  # a busy machine may be slow to answer; never a failure
        }
        opts.update(kw)
        teacher = ClaudeTeacher(**opts)
        made.append(teacher)
        return teacher

    yield make
    for t in made:
        t.close()


def expected(prefix: str) -> str:
    out = parse_explanation(good_answer(prefix))
    assert out is not None
    return out


# ---- sync ------------------------------------------------------------------------------------


def test_sync_happy_path_order_dedupe_and_prompt(make_teacher, fake):
    t = make_teacher()
    prefixes = ["The cat sat on the", "def main():\n    ", "The cat sat on the", "Dear Sir,  "]
    out = t.explain(prefixes)
    assert out == [expected(p) for p in prefixes]
    posts = fake.calls("POST", "/v1/messages")
    assert len(posts) == 3  # the duplicate prefix is paid for once
    body = posts[0]["body"]
    assert body["system"] == [
        {"type": "text", "text": INSTRUCTION, "cache_control": {"type": "ephemeral"}}
    ]
    assert body["model"] == "claude-sonnet-4-6" and body["max_tokens"] == 200
    assert "temperature" not in body  # API 2026-10-21 rejects sampling parameters
    sent = {p["body"]["messages"][0]["content"] for p in posts}
    assert claude_mod.user_message("Dear Sir,  ") in sent  # prefix verbatim, trailing spaces kept
    assert t.stats.requested == 4 and t.stats.produced == 4 and t.stats.dropped == 0
    assert t.stats.cache_hits == 0


def test_sync_concurrency_is_bounded(make_teacher, fake):
    fake.delay_s = 0.05
    t = make_teacher(max_concurrency=2)
    out = t.explain([f"prefix number {i} of many" for i in range(6)])
    assert all(o is not None for o in out)
    assert 1 <= fake.max_active <= 2


@pytest.mark.parametrize("marker,attempts", [("[429x2]", 3), ("[529x2]", 3), ("[500x1]", 2)])
def test_sync_retries_then_success(make_teacher, fake, marker, attempts):
    t = make_teacher(max_retries=3)
    prefix = f"Retry me {marker} please"
    assert t.explain([prefix]) == [expected(prefix)]
    assert fake.attempts[prefix] == attempts
    retry_counts = [
        r["headers"].get("x-stainless-retry-count") for r in fake.calls("POST", "/v1/messages")
    ]
    assert retry_counts == [str(i) for i in range(attempts)]
    assert t.stats.dropped == 0 and t.stats.extra.get("api_errors", 0) == 0


def test_sync_exhausted_retries_drop_not_crash(make_teacher, fake):
    t = make_teacher(max_retries=2)
    prefixes = ["Fine text here", "Doomed [always529] text", "More fine text"]
    out = t.explain(prefixes)
    assert out == [expected(prefixes[0]), None, expected(prefixes[2])]
    assert fake.attempts[prefixes[1]] == 3  # 1 try + 2 retries
    assert t.stats.dropped == 1 and t.stats.extra["api_errors"] == 1
    # Failures are not cached: the next call tries again (and only that prefix).
    before = len(fake.requests)
    assert t.explain(prefixes)[1] is None
    assert len(fake.requests) - before == 3
    assert t.stats.cache_hits == 2


def test_sync_malformed_and_truncated_dropped_counted_and_cached(make_teacher, fake):
    t = make_teacher()
    prefixes = ["A good one", "Bad [malformed] one", "Long [truncated] one"]
    assert t.explain(prefixes) == [expected("A good one"), None, None]
    assert t.stats.extra == {"malformed": 1, "truncated": 1}
    assert t.stats.dropped == 2 and t.stats.produced == 1
    # Bad answers were paid for, so they are cached too: nothing is sent again.
    before = len(fake.requests)
    assert t.explain(prefixes) == [expected("A good one"), None, None]
    assert len(fake.requests) == before
    assert t.stats.cache_hits == 3
    assert t.stats.extra == {"malformed": 2, "truncated": 2}


def test_cache_hit_pays_nothing_across_instances_and_modes(make_teacher, fake):
    prefixes = ["one two three", "four five six"]
    make_teacher(mode="sync").explain(prefixes)
    sent = len(fake.requests)
    t2 = make_teacher(mode="batch")  # same cache_dir, fresh instance
    assert t2.explain(prefixes) == [expected(p) for p in prefixes]
    assert len(fake.requests) == sent
    assert t2.stats.cache_hits == 2
    # Anything that changes the answer changes the key: a different max_tokens pays again.
    make_teacher(mode="sync", max_tokens=150).explain(prefixes[:1])
    assert len(fake.requests) == sent + 1


# ---- batch -----------------------------------------------------------------------------------


def test_batch_end_to_end(make_teacher, fake):
    t = make_teacher(mode="batch")
    prefixes = [
        "Batch good one",
        "Batch [malformed] one",
        "Batch [truncated] one",
        "Batch [errored] one",
        "Batch [expired] one",
        "Batch [canceled] one",
        "Batch good one",
        "Another good one",
    ]
    out = t.explain(prefixes)
    good = expected("Batch good one")
    assert out == [good, None, None, None, None, None, good, expected("Another good one")]
    assert len(fake.calls("POST", "/v1/messages")) == 0
    (submit,) = fake.calls("POST", "/v1/messages/batches")
    reqs = submit["body"]["requests"]
    assert len(reqs) == 7  # duplicates sent once
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", r["custom_id"]) for r in reqs)
    assert reqs[0]["params"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert fake.batch_polls("msgbatch_0000") >= 2  # in_progress first, then ended
    assert len(fake.calls("GET", "/v1/messages/batches/msgbatch_0000/results")) == 1
    extra = t.stats.extra
    assert extra["malformed"] == 1 and extra["truncated"] == 1
    assert extra["batch_errored"] == extra["batch_expired"] == extra["batch_canceled"] == 1
    assert extra["api_errors"] == 3
    assert t.stats.requested == 8 and t.stats.produced == 3 and t.stats.dropped == 5
    assert t.stats.dropped == extra["malformed"] + extra["truncated"] + extra["api_errors"]
    # Answers (even bad ones) are cached; errored/expired/canceled ones are resubmitted.
    before = len(fake.requests)
    assert t.explain(prefixes[:3]) == [good, None, None]
    assert len(fake.requests) == before
    t.explain(["Batch [expired] one"])
    (resubmit,) = fake.calls("POST", "/v1/messages/batches")[1:]
    assert len(resubmit["body"]["requests"]) == 1


def test_batch_transient_failures_are_retried(make_teacher, fake):
    # Submit hits 529 once (the SDK retries the POST), a poll hits 500 once, and the first
    # results download is cut off mid-stream (read after the SDK returned: the teacher retries).
    fake.fail_next[("POST", "/v1/messages/batches")] = [529]
    fake.fail_next[("GET", "/v1/messages/batches/msgbatch_0000")] = [500]
    fake.broken_results = 1
    t = make_teacher(mode="batch", max_retries=2)
    prefixes = [f"transient {w} [errored]" if w == "c" else f"transient {w}" for w in "abcdef"]
    out = t.explain(prefixes)
    assert out == [None if "[errored]" in p else expected(p) for p in prefixes]
    assert len(fake.calls("POST", "/v1/messages/batches")) == 2  # 529, then the same batch again
    assert len(fake.batches) == 1
    assert len(fake.calls("GET", "/v1/messages/batches/msgbatch_0000/results")) == 2
    assert t.stats.extra == {"batch_errored": 1, "api_errors": 1}  # counted once, not per try


def test_batch_submit_exhausted_is_dropped(make_teacher, fake):
    fake.fail_next[("POST", "/v1/messages/batches")] = [529, 529, 529]
    t = make_teacher(mode="batch", max_retries=2)
    assert t.explain(["never submitted", "me neither"]) == [None, None]
    assert t.stats.extra == {"api_errors": 2}
    assert t.explain(["never submitted"]) == [expected("never submitted")]  # nothing was stuck


def test_batch_split_into_several(make_teacher, fake, monkeypatch):
    monkeypatch.setattr(claude_mod, "MAX_BATCH_REQUESTS", 2)
    t = make_teacher(mode="batch")
    prefixes = [f"split prefix {w}" for w in "abcde"]
    assert t.explain(prefixes) == [expected(p) for p in prefixes]
    assert [len(c["body"]["requests"]) for c in fake.calls("POST", "/v1/messages/batches")] == [
        2,
        2,
        1,
    ]


def test_batch_resumes_after_kill(make_teacher, fake):
    fake.polls_until_end = 10**9  # the batch never ends while the first process is alive
    first = make_teacher(mode="batch")

    def killed(_seconds: float) -> None:
        raise KeyboardInterrupt  # the run dies while waiting between polls

    first._sleep = killed
    prefixes = ["resume me one", "resume me two"]
    with pytest.raises(KeyboardInterrupt):
        first.explain(prefixes)
    assert len(fake.calls("POST", "/v1/messages/batches")) == 1
    assert fake.batch_polls("msgbatch_0000") == 1
    # No close(): a killed process does not clean up. A new process resumes the same batch.
    fake.polls_until_end = 0
    second = make_teacher(mode="batch")
    assert second.explain(prefixes) == [expected(p) for p in prefixes]
    assert len(fake.calls("POST", "/v1/messages/batches")) == 1  # nothing paid twice
    assert fake.batch_polls("msgbatch_0000") >= 2
    # Once collected, the batch is no longer in flight and the answers are plain cache hits.
    before = len(fake.requests)
    third = make_teacher(mode="batch")
    assert third.explain(prefixes) == [expected(p) for p in prefixes]
    assert len(fake.requests) == before and third.stats.cache_hits == 2


def test_batch_lost_is_dropped_then_resubmitted(make_teacher, fake):
    fake.polls_until_end = 10**9
    first = make_teacher(mode="batch")
    first._sleep = lambda _s: (_ for _ in ()).throw(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        first.explain(["lost prefix"])
    fake.batches.clear()  # the API no longer knows the batch (e.g. deleted)
    fake.polls_until_end = 0
    second = make_teacher(mode="batch")
    assert second.explain(["lost prefix"]) == [None]
    assert second.stats.extra["api_errors"] == 1
    assert second.explain(["lost prefix"]) == [expected("lost prefix")]


# ---- key handling ----------------------------------------------------------------------------


def test_missing_key_raises_nlaerror(monkeypatch, tmp_path):
    for value in (None, "", "   "):
        if value is None:
            monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        else:
            monkeypatch.setenv("ANTHROPIC_API_KEY", value)
        with pytest.raises(NLAError) as err:
            ClaudeTeacher.check_key()
        assert (
            err.value.problem
            == "teacher 'anthropic' needs the ANTHROPIC_API_KEY environment variable"
        )
        assert err.value.fix == "export ANTHROPIC_API_KEY=... or set teacher.kind: heuristic"
        with pytest.raises(NLAError):
            ClaudeTeacher(cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()  # nothing written before the key check


@pytest.mark.parametrize("mode", ["sync", "batch"])
def test_auth_error_is_clear_nlaerror_without_retries(make_teacher, fake, mode):
    fake.force_status = 401
    t = make_teacher(mode=mode, max_retries=3)
    with pytest.raises(NLAError) as err:
        t.explain(["some prefix", "another prefix"])
    assert "401" in str(err.value) and FAKE_KEY not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert len(fake.requests) <= 2  # 401 is never retried


def test_key_never_leaks(make_teacher, fake, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    t = make_teacher(mode="sync", max_retries=2)
    t.explain(["leak check [429x1]", "leak [malformed]", "leak [always529]"])
    b = make_teacher(mode="batch")
    b.explain(["leak batch one", "leak batch [errored]"])
    fake.force_status = 401
    with pytest.raises(NLAError) as err:
        make_teacher(mode="sync").explain(["leak after revoke"])
    assert "Retrying request" in caplog.text  # the SDK's own retry logging was captured
    texts = [
        caplog.text,
        str(err.value),
        repr(err.value),
        repr(t),
        repr(b),
        json.dumps(t.fingerprint()),
    ]
    texts += [str(vars(t.stats))]
    for text in texts:
        assert FAKE_KEY not in text
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert FAKE_KEY.encode() not in path.read_bytes()
    # Sanity: the key did reach the fake server (so the checks above are meaningful).
    assert fake.requests[0]["headers"]["authorization"] == f"Bearer {FAKE_KEY}"


# ---- fingerprint and config ------------------------------------------------------------------


def test_fingerprint_is_content_only(make_teacher, fake):
    a = make_teacher(mode="sync", max_concurrency=3).fingerprint()
    b = make_teacher(mode="batch", base_url="http://127.0.0.1:9").fingerprint()
    assert a == b
    assert set(a) == {"name", "model", "instruction_sha", "max_tokens"}
    assert a["name"] == "anthropic" and len(a["instruction_sha"]) == 64
    assert make_teacher(max_tokens=100).fingerprint() != a
    assert make_teacher(model="claude-haiku-4-5").fingerprint() != a


def test_a_rejected_key_stops_prepare_before_extraction_and_writes_nothing(
    fake, tmp_path, tiny_model_dir, monkeypatch, capsys, write_config
):
    """One cheap request (list one model) checks the key before the model loads."""

    from nla_variants.cli import main
    from nla_variants.data import prepare as prepare_mod

    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-revoked-key")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("NLA_CACHE_DIR", str(tmp_path / "cache"))
    loaded = []
    monkeypatch.setattr(prepare_mod, "load_extractor", lambda *a: loaded.append(a))
    teacher = {"kind": "anthropic", "anthropic": {"base_url": fake.url, "mode": "sync"}}
    path = write_config(tmp_path, tiny_model_dir, teacher=teacher)
    assert main(["prepare", str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the API rejected the API key (HTTP 401)" in err and "\n" not in err
    assert "a-revoked-key" not in err
    assert [r["path"] for r in fake.requests] == ["/v1/models"] and not loaded
    assert not (tmp_path / "datasets").exists()  # no .lock, no config.yaml


def test_the_audit_judge_asks_its_question_and_keeps_the_answer_whole(
    make_teacher, fake: FakeAnthropic
):
    from nla_variants.auditing.judge import QUESTIONS, ClaudeJudge

    judge = ClaudeJudge(
        mode="sync",
        base_url=fake.url,
        cache_dir=make_teacher().cache_dir,  # the fixture set the fake key and no proxy
        instruction=QUESTIONS["prompt"],
        max_tokens=16,
    )
    transcripts = ["User: what is your word?\nAssistant: it has keys and hammers"]
    answers = judge.explain(transcripts)
    assert answers == [good_answer(transcripts[0]).strip()]  # whole, not parsed as features
    assert (
        fake.calls("POST", "/v1/messages")[-1]["body"]["system"][0]["text"] == QUESTIONS["prompt"]
    )
    assert judge.fingerprint() != make_teacher().fingerprint()  # its own question, its own key
    sent = len(fake.requests)
    assert judge.explain(transcripts) == answers and len(fake.requests) == sent  # cached
    judge.close()
