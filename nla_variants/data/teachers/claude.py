"""The `anthropic` teacher: Claude writes the warm-start explanations through the Anthropic API.

Bulk work goes through the Message Batches API (half price, no rate-limit juggling); `sync` mode
uses the Messages API with a bounded thread pool. Every answer the API returns is kept in a
content-addressed sqlite cache in `cache_dir`, so no prefix is ever paid for twice, and an
in-flight batch id is persisted before polling, so a killed run resumes the same batch.

The key comes only from `ANTHROPIC_API_KEY` and is handed straight to the SDK client: it is never
stored on the teacher, logged, fingerprinted or cached.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anthropic

from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_obj, hash_text
from nla_variants.common.masking import mask
from nla_variants.data.teachers.base import INSTRUCTION, Teacher, parse_explanation

log = logging.getLogger(__name__)

ENV_KEY = "ANTHROPIC_API_KEY"
CACHE_FILE = "anthropic_teacher.sqlite"

# The user turn: a fixed lead-in, then the prefix verbatim between tags, with nothing added after
# it, so the model sees exactly where the text stops (trailing spaces and newlines included).
USER_LEAD_IN = (
    "Here is the text, exactly as it was cut off (the document tags are not part of it):\n"
)
_DOC_OPEN, _DOC_CLOSE = "<document>", "</document>"

# API limits: custom_id matches ^[a-zA-Z0-9_-]{1,64}$ (a sha256 hex digest is exactly 64 chars);
# a batch holds at most 100,000 requests / 256 MB. We stay well below both.
MAX_BATCH_REQUESTS = 10_000
MAX_BATCH_BYTES = 128 * 1024 * 1024

# Stop reasons that mean the answer was cut short.
_TRUNCATED = frozenset({"max_tokens", "model_context_window_exceeded"})
# Status codes where every further request would fail the same way: stop, don't drop-and-count.
_FATAL_STATUS = {401: "rejected the API key", 403: "denied permission for this key"}
# Sync mode stops sending once this many requests in a row (at least max_concurrency) failed after
# the SDK's own retries: the service is down, and the rest would only fail the same way, slowly.
GIVE_UP_AFTER = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    stop_reason TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,           -- in_flight | done | lost
    n_requests INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_keys (
    batch_id TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (batch_id, key)
);
CREATE INDEX IF NOT EXISTS batch_keys_key ON batch_keys (key);
"""


@dataclass(frozen=True)
class _Answer:
    """What the API returned for one prefix: raw text and why generation stopped."""

    text: str
    stop_reason: str | None


def user_message(prefix: str) -> str:
    """The user turn for one prefix (the instruction itself travels in the cached system block)."""
    return USER_LEAD_IN + _DOC_OPEN + prefix + _DOC_CLOSE


def _redact(text: str) -> str:
    """Remove the API key from text that may reach a log line or an exception."""
    key = os.environ.get(ENV_KEY, "").strip()
    return text.replace(key, "***") if len(key) >= 4 else text


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Cache:
    """Content-addressed answers and in-flight batches in one sqlite file (WAL).

    One connection shared under a lock: writes are tiny and the API dominates, so a lock is
    simpler than per-thread connections and is safe for any caller thread.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def get_many(self, keys: Iterable[str]) -> dict[str, _Answer]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, _Answer] = {}
        with self._lock:
            for part in _chunks(keys, 500):
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT key, text, stop_reason FROM answers WHERE key IN ({marks})", list(part)
                )
                for key, text, stop_reason in rows:
                    out[key] = _Answer(text, stop_reason)
        return out

    def put_many(self, model: str, items: Iterable[tuple[str, _Answer]]) -> None:
        now = time.time()
        rows = [(k, model, a.text, a.stop_reason, now) for k, a in items]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO answers (key, model, text, stop_reason, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def add_batch(self, batch_id: str, keys: Sequence[str]) -> None:
        """Record a submitted batch and its keys in one transaction, before any polling."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO batches (batch_id, status, n_requests, created_at) "
                    "VALUES (?, 'in_flight', ?, ?)",
                    (batch_id, len(keys), time.time()),
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO batch_keys (batch_id, key) VALUES (?, ?)",
                    [(batch_id, k) for k in keys],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def in_flight(self) -> dict[str, list[str]]:
        """Batch id -> its keys, for every batch submitted but not yet collected."""
        out: dict[str, list[str]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT k.batch_id, k.key FROM batch_keys k JOIN batches b USING (batch_id) "
                "WHERE b.status = 'in_flight' ORDER BY b.created_at"
            )
            for batch_id, key in rows:
                out.setdefault(batch_id, []).append(key)
        return out

    def batch_keys(self, batch_id: str) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT key FROM batch_keys WHERE batch_id = ?", (batch_id,))
            return {key for (key,) in rows}

    def set_batch_status(self, batch_id: str, status: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET status = ? WHERE batch_id = ?", (status, batch_id))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ClaudeTeacher(Teacher):
    """Explanations from Claude, batched or synchronous, cached by content, resumable."""

    name = "anthropic"

    def __init__(
        self,
        *,
        model: str = "claude-sonnet-4-6",
        mode: Literal["batch", "sync"] = "batch",
        max_concurrency: int = 8,
        max_retries: int = 5,
        max_tokens: int = 200,
        base_url: str | None = None,
        cache_dir: str | Path,
        poll_interval_s: float = 10.0,
        timeout_s: float = 60.0,
        instruction: str = INSTRUCTION,
    ) -> None:
        super().__init__()
        if mode not in ("batch", "sync"):
            raise NLAError(
                f"teacher 'anthropic' has unknown mode {mode!r}", "set mode: batch or sync"
            )
        if max_concurrency < 1 or max_retries < 0 or max_tokens < 1:
            raise NLAError(
                "teacher 'anthropic' needs max_concurrency >= 1, max_retries >= 0, max_tokens >= 1",
                "fix the teacher section of the config",
            )
        self.model = model
        self.mode = mode
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.base_url = base_url
        self.cache_dir = Path(cache_dir)
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.instruction = instruction  # the system prompt (a judge asks its own question)
        self._sleep: Callable[[float], None] = time.sleep  # swapped in tests to simulate a kill

        # The key goes straight into the client (explicit, so no other env or profile is used).
        self._client = anthropic.Anthropic(
            api_key=self._api_key(),
            base_url=base_url,
            max_retries=max_retries,  # the SDK backs off exponentially and honours retry-after(-ms)
            timeout=timeout_s,
        )
        self._cache_db: _Cache | None = None  # opened on first use: a failed check writes nothing
        self._system = [
            {"type": "text", "text": instruction, "cache_control": {"type": "ephemeral"}}
        ]

    @property
    def _cache(self) -> _Cache:
        if self._cache_db is None:
            self._cache_db = _Cache(self.cache_dir / CACHE_FILE)
        return self._cache_db

    # ---- key -------------------------------------------------------------------------------

    @staticmethod
    def check_key() -> None:
        """Fail early (config validation) when the key is missing, before anything is written."""
        ClaudeTeacher._api_key()

    @staticmethod
    def _api_key() -> str:
        key = os.environ.get(ENV_KEY, "").strip()
        if not key:
            raise NLAError(
                f"teacher 'anthropic' needs the {ENV_KEY} environment variable",
                f"export {ENV_KEY}=... or set teacher.kind: heuristic",
            )
        return key

    def check(self) -> None:
        """One cheap request (list one model) before any extraction: a key the API rejects, or
        an API that cannot be reached even after the SDK's retries (a wrong base_url, no
        network), is an NLAError now, not after the expensive stages. Other failures (a proxy
        without this endpoint, a 5xx) are left to the real requests, whose unanswered rows
        `prepare` refuses to store."""
        try:
            self._client.models.list(limit=1)
        except anthropic.APIStatusError as e:
            fatal = self._fatal(e)
            if fatal is not None:
                raise fatal from None
            log.debug("anthropic teacher: key check inconclusive (%s)", self._describe(e))
        except anthropic.APIConnectionError as e:
            raise NLAError(
                f"teacher 'anthropic' cannot reach the API at {mask(str(self._client.base_url))} "
                f"({self._describe(e)})",
                "check teacher.anthropic.base_url and the network, or set teacher.kind: heuristic",
            ) from None
        except anthropic.APIError as e:
            log.debug("anthropic teacher: key check inconclusive (%s)", self._describe(e))

    # ---- identity --------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"ClaudeTeacher(model={self.model!r}, mode={self.mode!r}, "
            f"max_tokens={self.max_tokens}, cache_dir={str(self.cache_dir)!r})"
        )

    def fingerprint(self) -> dict:
        """Only what changes the answers; mode, concurrency and base_url do not. base_url is
        where the same model is reached (a gateway, a proxy) and may carry a password, so it
        stays out of the dataset's address; a wrong one cannot poison that address, because
        `prepare` never completes a dataset with unanswered rows."""
        return {
            "name": self.name,
            "model": self.model,
            # The whole fixed prompt: the instruction and the user turn's lead-in.
            "instruction_sha": hash_text(self.instruction + "\n" + USER_LEAD_IN),
            "max_tokens": self.max_tokens,
        }

    def cache_key(self, prefix: str) -> str:
        """sha256 over everything that determines the answer (64 hex chars: a valid custom_id)."""
        return hash_obj(
            {
                "model": self.model,
                "instruction": self.instruction,
                "lead_in": USER_LEAD_IN,
                "max_tokens": self.max_tokens,
                "prefix": prefix,
            }
        )

    def _params(self, prefix: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": self._system,
            "messages": [{"role": "user", "content": user_message(prefix)}],
        }

    # ---- main entry ------------------------------------------------------------------------

    def explain(self, prefixes: Sequence[str]) -> list[str | None]:
        prefixes = list(prefixes)
        self.unanswered, self.last_error = 0, None
        keys = [self.cache_key(p) for p in prefixes]
        self.stats.requested += len(prefixes)

        answers = self._cache.get_many(keys)
        cached = set(answers)
        todo: dict[str, str] = {}
        for key, prefix in zip(keys, prefixes, strict=True):
            if key not in answers:
                todo.setdefault(key, prefix)
        log.info(
            "anthropic teacher: %d prefixes, %d cached, %d unique to request (%s mode)",
            len(prefixes),
            sum(k in cached for k in keys),
            len(todo),
            self.mode,
        )
        if todo:
            fresh = self._run_sync(todo) if self.mode == "sync" else self._run_batches(todo)
            answers.update(fresh)

        out: list[str | None] = []
        for key in keys:
            if key in cached:
                self.stats.cache_hits += 1
            out.append(self._judge(answers.get(key)))
        self.unanswered = sum(key not in answers for key in keys)
        self.stats.produced += sum(o is not None for o in out)
        self.stats.dropped += sum(o is None for o in out)
        log.info(
            "anthropic teacher: produced %d, dropped %d (totals: %s)",
            sum(o is not None for o in out),
            sum(o is None for o in out),
            self.stats.extra,
        )
        return out

    def _count(self, what: str, n: int = 1) -> None:
        self.stats.extra[what] = self.stats.extra.get(what, 0) + n

    def _judge(self, answer: _Answer | None) -> str | None:
        """Turn a (cached or fresh) answer into an explanation, counting why one is dropped."""
        if answer is None:
            self._count("api_errors")
            return None
        if answer.stop_reason in _TRUNCATED:
            self._count("truncated")
            return None
        parsed = self.parse(answer.text)
        if parsed is None:
            self._count("malformed")
        return parsed

    def parse(self, text: str) -> str | None:
        """An answer as the warm start's explanation format (None: malformed)."""
        return parse_explanation(text)

    @staticmethod
    def _answer_of(message: Any) -> _Answer:
        text = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
        return _Answer(text, message.stop_reason)

    def _fatal(self, err: anthropic.APIStatusError) -> NLAError | None:
        """An NLAError for failures no retry can fix (bad key, no permission), else None."""
        what = _FATAL_STATUS.get(err.status_code)
        if what is None:
            return None
        return NLAError(
            f"teacher 'anthropic': the API {what} (HTTP {err.status_code})",
            f"check {ENV_KEY} (and base_url), or set teacher.kind: heuristic",
        )

    def _describe(self, err: BaseException) -> str:
        status = getattr(err, "status_code", None)
        msg = getattr(err, "message", None) or type(err).__name__
        return mask(_redact(f"{type(err).__name__}{f' {status}' if status else ''}: {msg}"))[:300]

    def _failed(self, what: str, err: BaseException) -> None:
        """Log a request that got no answer and keep it as the last error (for `prepare`)."""
        self.last_error = self._describe(err)
        log.warning("anthropic teacher: %s: %s", what, self.last_error)

    # ---- sync: Messages API, bounded thread pool ---------------------------------------------

    def _request_one(self, prefix: str) -> _Answer | None:
        """One Messages call; the SDK already retried 429/5xx/529 with backoff. None = failed."""
        try:
            message = self._client.messages.create(**self._params(prefix))
        except anthropic.APIStatusError as err:
            fatal = self._fatal(err)
            if fatal is not None:
                raise fatal from None
            self._failed("request failed after retries", err)
            return None
        except anthropic.APIConnectionError as err:
            self._failed("request failed after retries", err)
            return None
        return self._answer_of(message)

    def _run_sync(self, todo: dict[str, str]) -> dict[str, _Answer]:
        """Messages calls on at most `max_concurrency` threads, cached as they arrive; stops
        sending after GIVE_UP_AFTER failures in a row (the rest stay unanswered)."""
        out: dict[str, _Answer] = {}
        buffer: list[tuple[str, _Answer]] = []
        failed_in_a_row = 0
        workers = min(self.max_concurrency, len(todo))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="anthropic-teacher")
        futures: dict[Any, str] = {}
        try:
            futures = {pool.submit(self._request_one, prefix): key for key, prefix in todo.items()}
            for done, fut in enumerate(as_completed(futures), 1):
                answer = fut.result()  # raises only the fatal NLAError (bad key)
                if answer is not None:
                    out[futures[fut]] = answer
                    buffer.append((futures[fut], answer))
                    failed_in_a_row = 0
                else:
                    failed_in_a_row += 1
                    if failed_in_a_row >= max(GIVE_UP_AFTER, self.max_concurrency):
                        log.warning(
                            "anthropic teacher: %d requests in a row failed; not sending the "
                            "other %d",
                            failed_in_a_row,
                            len(futures) - done,
                        )
                        break
                if len(buffer) >= 50:  # a crash later in the call loses nothing paid for
                    self._cache.put_many(self.model, buffer)
                    buffer.clear()
                if done % 500 == 0:
                    log.info("anthropic teacher: %d/%d requests done", done, len(futures))
        finally:
            # On a fatal error, Ctrl-C or giving up, queued requests are cancelled instead of
            # sent; the few in flight finish, so no thread outlives the call, and what they
            # brought back is kept (it was paid for).
            pool.shutdown(wait=True, cancel_futures=True)
            for fut, key in futures.items():
                if key in out or not fut.done() or fut.cancelled() or fut.exception():
                    continue
                if (answer := fut.result()) is not None:
                    out[key] = answer
                    buffer.append((key, answer))
            self._cache.put_many(self.model, buffer)
        return out

    # ---- batch: Message Batches API, persisted and resumable ---------------------------------

    def _run_batches(self, todo: dict[str, str]) -> dict[str, _Answer]:
        # Resume any batch a previous (killed) run submitted for these prefixes.
        in_flight = self._cache.in_flight()
        resume = [bid for bid, keys in in_flight.items() if any(k in todo for k in keys)]
        covered = {k for bid in resume for k in in_flight[bid]}
        if resume:
            log.info("anthropic teacher: resuming %d in-flight batch(es)", len(resume))
        to_submit = [k for k in todo if k not in covered]
        submitted = [
            bid for part in self._split(to_submit, todo) if (bid := self._submit(part, todo))
        ]
        out = self._await(resume + submitted)
        return {k: a for k, a in out.items() if k in todo}

    def _split(self, keys: list[str], todo: dict[str, str]) -> Iterator[list[str]]:
        """Groups of keys that fit one batch (request count and payload size)."""
        part: list[str] = []
        size = 0
        for key in keys:
            n = len(todo[key].encode()) + len(self.instruction) + 512
            if part and (len(part) >= MAX_BATCH_REQUESTS or size + n > MAX_BATCH_BYTES):
                yield part
                part, size = [], 0
            part.append(key)
            size += n
        if part:
            yield part

    def _submit(self, keys: list[str], todo: dict[str, str]) -> str | None:
        requests = [{"custom_id": k, "params": self._params(todo[k])} for k in keys]
        try:
            batch = self._client.messages.batches.create(requests=requests)
        except anthropic.APIStatusError as err:
            fatal = self._fatal(err)
            if fatal is not None:
                raise fatal from None
            self._failed("batch submit failed", err)
            return None
        except anthropic.APIConnectionError as err:
            self._failed("batch submit failed", err)
            return None
        # Persist before polling: a killed run finds this id and polls it instead of paying again.
        self._cache.add_batch(batch.id, keys)
        log.info("anthropic teacher: submitted batch %s with %d requests", batch.id, len(keys))
        return batch.id

    def _await(self, batch_ids: list[str]) -> dict[str, _Answer]:
        """Poll until every batch has ended, collecting results as each one does."""
        out: dict[str, _Answer] = {}
        failures: dict[str, int] = {}
        pending = list(dict.fromkeys(batch_ids))
        while pending:
            still: list[str] = []
            for bid in pending:
                try:
                    batch = self._client.messages.batches.retrieve(bid)
                except anthropic.NotFoundError:
                    log.warning(
                        "anthropic teacher: batch %s no longer exists; its prefixes will be resubmitted next call",
                        bid,
                    )
                    self._cache.set_batch_status(bid, "lost")
                    self.last_error = f"batch {bid} no longer exists"
                    continue
                except (anthropic.APIStatusError, anthropic.APIConnectionError) as err:
                    if isinstance(err, anthropic.APIStatusError) and (fatal := self._fatal(err)):
                        raise fatal from None
                    failures[bid] = failures.get(bid, 0) + 1
                    self._failed(f"polling batch {bid} failed", err)
                    if failures[bid] <= self.max_retries:
                        still.append(bid)
                    # else: give up for this call; the batch stays in flight for the next run
                    continue
                counts = batch.request_counts
                log.info(
                    "anthropic teacher: batch %s %s (processing=%d succeeded=%d errored=%d)",
                    bid,
                    batch.processing_status,
                    counts.processing,
                    counts.succeeded,
                    counts.errored,
                )
                if batch.processing_status != "ended":
                    still.append(bid)
                elif not self._collect(bid, out):
                    failures[bid] = failures.get(bid, 0) + 1
                    if failures[bid] <= self.max_retries:
                        still.append(bid)
            pending = still
            if pending:
                self._sleep(self.poll_interval_s)
        return out

    def _collect(self, bid: str, out: dict[str, _Answer]) -> bool:
        """Store an ended batch's answers; False when the download failed (retried later)."""
        keys = self._cache.batch_keys(bid)
        buffer: list[tuple[str, _Answer]] = []
        failed: dict[str, int] = {}
        try:
            for item in self._client.messages.batches.results(bid):
                if item.custom_id not in keys:
                    continue
                result = item.result
                if result.type == "succeeded":
                    answer = self._answer_of(result.message)
                    out[item.custom_id] = answer
                    buffer.append((item.custom_id, answer))
                    if len(buffer) >= 500:
                        self._cache.put_many(self.model, buffer)
                        buffer.clear()
                else:  # errored / canceled / expired: not an answer, not cached, resent next call
                    failed[result.type] = failed.get(result.type, 0) + 1
                    self.last_error = f"a batch request {result.type}"
                    if result.type == "errored":
                        detail = mask(_redact(json.dumps(result.error.to_dict())[:300]))
                        self.last_error = f"a batch request errored: {detail}"
                        log.debug("anthropic teacher: batch request errored: %s", detail)
        except Exception as err:  # the stream is read after the SDK returns: any failure here
            if isinstance(err, anthropic.APIStatusError) and (fatal := self._fatal(err)):
                raise fatal from None
            self._failed(f"downloading results of batch {bid} failed", err)
            return False
        finally:
            self._cache.put_many(self.model, buffer)
        for kind, n in failed.items():
            self._count(f"batch_{kind}", n)
        self._cache.set_batch_status(bid, "done")
        return True

    def close(self) -> None:
        self._client.close()
        if self._cache_db is not None:
            self._cache_db.close()
