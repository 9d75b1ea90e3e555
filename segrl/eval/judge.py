"""LLM-as-judge evaluation of long-form captions through any OpenAI-compatible chat-completions endpoint.

Two modes, as in SD-GRPO's MMSci evaluation (and MMSci's own ``llm_judge_scores.py``, which
scores captions against the reference with an LLM):

* **absolute**: the judge rates a prediction against the reference on :data:`AXES`
  (accuracy, completeness, fluency), each 1 to 5 in steps of 0.5;
* **pairwise**: the judge sees the reference and two predictions (from two runs) and says,
  per axis and overall (:data:`PAIRWISE_AXES`), which is better: ``"A"``, ``"B"`` or
  ``"tie"``. Which run is shown as A is drawn per example from ``random.Random(f"{seed}:{id}")``
  (so it does not depend on the order or subset of examples) and recorded with the verdict.

Protocol: ``POST <url>/chat/completions`` (``url`` may also be the full endpoint) with
``{"model", "messages": [system, user], "temperature", "max_tokens"}``; the reply's
``choices[0].message.content`` must hold one JSON object (a fenced block or surrounding prose
is tolerated: the outermost ``{...}`` is parsed). Our departures from MMSci's script: JSON
replies instead of a bare number, and half-point steps.

Failure handling, per request:

* a reply that is not valid (not JSON, a missing axis, a score off the 1..5 half-point grid,
  a verdict other than A/B/tie, a malformed response body), a timeout, or HTTP 408/409/425/429/5xx
  is retried, at most ``max_retries`` times (so ``1 + max_retries`` attempts), waiting
  ``backoff_s * 2**k`` seconds before retry ``k + 1`` after a timeout or HTTP error;
* when every attempt failed, the example is recorded as **missing** with the reason; it never
  gets a score, and means are taken over the scored examples only (``n_missing`` is reported);
* an endpoint that refuses every connection, or answers any other HTTP 4xx (wrong model name,
  bad key, wrong URL), raises :class:`JudgeError` at once: retrying cannot fix it.

Cache: every valid reply is stored on disk under the SHA-256 of the canonical request JSON
(model, messages, temperature, max_tokens; not the URL or the key), so a re-run with the same
requests sends none. A cached reply is re-parsed when read; missing examples are not cached,
so a re-run asks again. The API key comes from ``api_key``, else ``$SEGRL_JUDGE_API_KEY``, else
``$OPENAI_API_KEY``, and is never written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

AXES = ("accuracy", "completeness", "fluency")
PAIRWISE_AXES = (*AXES, "overall")
VERDICTS = ("A", "B", "tie")
PROMPT_VERSION = 1
"""Bumped whenever a prompt below changes (a changed prompt is also a new cache key)."""

ABSOLUTE_SYSTEM = """\
You are an expert reviewer of scientific figure captions. Compare the candidate caption with the \
reference caption written by the figure's authors, and rate the candidate on three axes, each from \
1 (worst) to 5 (best) in steps of 0.5:
- accuracy: the candidate's statements agree with the reference; nothing is wrong or invented.
- completeness: the candidate covers what the reference says, every sub-figure included.
- fluency: the candidate is well-formed, readable scientific English.
Reply with one JSON object and nothing else, for example:
{"accuracy": 3.5, "completeness": 4, "fluency": 5}"""

PAIRWISE_SYSTEM = """\
You are an expert reviewer of scientific figure captions. Compare two candidate captions, A and B, \
with the reference caption written by the figure's authors. For each axis say which candidate is \
better, "A" or "B", or "tie":
- accuracy: statements agree with the reference; nothing is wrong or invented.
- completeness: covers what the reference says, every sub-figure included.
- fluency: well-formed, readable scientific English.
- overall: the better caption all things considered.
Reply with one JSON object and nothing else, for example:
{"accuracy": "A", "completeness": "tie", "fluency": "B", "overall": "A"}"""


class JudgeError(RuntimeError):
    """The endpoint cannot be used (unreachable, or an HTTP error that retrying cannot fix)."""


class InvalidReply(ValueError):
    """A judge reply that does not hold what was asked (the message says what is wrong)."""


# --- parsing (pure) ----------------------------------------------------------------------------
def extract_json_object(text: str) -> dict:
    """The JSON object in a reply: the whole text, else its outermost ``{...}``.

    Raises:
        InvalidReply: no JSON object can be read.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidReply("empty reply")
    s = text.strip()
    candidates = [s]
    lo, hi = s.find("{"), s.rfind("}")
    if 0 <= lo < hi:
        candidates.append(s[lo:hi + 1])
    for c in candidates:
        try:
            obj = json.loads(c)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise InvalidReply(f"no JSON object in reply {s[:120]!r}")


def _score(value, axis: str) -> float:
    if isinstance(value, bool):
        raise InvalidReply(f"{axis}: {value!r} is not a score")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidReply(f"{axis}: {value!r} is not a score") from None
    if not isinstance(value, int | float) or not 1.0 <= value <= 5.0 or (2 * value) != int(2 * value):
        raise InvalidReply(f"{axis}: {value!r} is not in 1..5 in steps of 0.5")
    return float(value)


def parse_absolute(text: str) -> dict[str, float]:
    """``{axis: score}`` for every axis of :data:`AXES` from a reply (extra keys ignored).

    Raises:
        InvalidReply: not a JSON object, an axis missing, a score outside 1..5 or off the 0.5 grid.
    """
    obj = extract_json_object(text)
    lower = {str(k).strip().lower(): v for k, v in obj.items()}
    missing = [a for a in AXES if a not in lower]
    if missing:
        raise InvalidReply(f"axes missing: {missing}")
    return {a: _score(lower[a], a) for a in AXES}


def parse_pairwise(text: str) -> dict[str, str]:
    """``{axis: "A" | "B" | "tie"}`` for every axis of :data:`PAIRWISE_AXES` (case-insensitive).

    Raises:
        InvalidReply: not a JSON object, an axis missing, a verdict other than A, B or tie.
    """
    obj = extract_json_object(text)
    lower = {str(k).strip().lower(): v for k, v in obj.items()}
    out = {}
    for axis in PAIRWISE_AXES:
        if axis not in lower:
            raise InvalidReply(f"axis missing: {axis}")
        v = lower[axis]
        norm = v.strip().lower() if isinstance(v, str) else None
        if norm not in ("a", "b", "tie"):
            raise InvalidReply(f"{axis}: {v!r} is not A, B or tie")
        out[axis] = "tie" if norm == "tie" else norm.upper()
    return out


def absolute_messages(reference: str, prediction: str) -> list[dict]:
    return [
        {"role": "system", "content": ABSOLUTE_SYSTEM},
        {"role": "user", "content": f"Reference caption:\n{reference}\n\nCandidate caption:\n{prediction}"},
    ]


def pairwise_messages(reference: str, first: str, second: str) -> list[dict]:
    return [
        {"role": "system", "content": PAIRWISE_SYSTEM},
        {"role": "user",
         "content": f"Reference caption:\n{reference}\n\nCaption A:\n{first}\n\nCaption B:\n{second}"},
    ]


def a_shown_first(seed: int, example_id: str) -> bool:
    """Whether run ``a``'s prediction is shown as caption A for this example (seeded coin flip)."""
    return random.Random(f"{seed}:{example_id}").random() < 0.5


# --- the client ------------------------------------------------------------------------------
@dataclass
class JudgeStats:
    """Counters of one :class:`ChatJudge` (requests actually sent, retries, cache hits ...)."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    invalid_replies: int = 0
    timeouts: int = 0
    http_errors: int = 0
    connection_errors: int = 0
    missing: int = 0


@dataclass
class Verdict:
    """One judged example.

    Attributes:
        parsed: the parsed reply (``parse_absolute`` / ``parse_pairwise``), or None when missing.
        reason: why it is missing (the last attempt's problem), else None.
        attempts: requests sent for it (0 when it came from the cache).
        cached: True when read from the cache.
        reply: the last raw reply text (None after a timeout).
    """

    parsed: dict | None
    reason: str | None = None
    attempts: int = 0
    cached: bool = False
    reply: str | None = None

    @property
    def missing(self) -> bool:
        return self.parsed is None


_RETRY_STATUS = frozenset({408, 409, 425, 429})


@dataclass
class ChatJudge:
    """A judge model behind an OpenAI-compatible chat-completions endpoint (rules in the module docstring).

    Args:
        url: ``http://host:port/v1`` (``/chat/completions`` is appended) or the full endpoint.
        model: the judge's model name, as the server knows it.
        api_key: bearer token (default ``$SEGRL_JUDGE_API_KEY`` or ``$OPENAI_API_KEY``; none if unset).
        timeout_s: seconds to wait for one reply.
        max_retries: retries after the first attempt (>= 0).
        backoff_s: base wait before a retry after a timeout or HTTP error.
        temperature, max_tokens: sampling settings sent with every request.
        cache_dir: where valid replies are stored (None: no cache).

    Raises:
        ValueError: an empty url or model, ``max_retries`` < 0, ``timeout_s`` <= 0.
    """

    url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 2
    backoff_s: float = 1.0
    temperature: float = 0.0
    max_tokens: int = 256
    cache_dir: str | Path | None = None
    stats: JudgeStats = field(default_factory=JudgeStats)

    def __post_init__(self) -> None:
        if not self.url or not self.model:
            raise ValueError(f"judge: url and model are required, got url={self.url!r}, model={self.model!r}")
        if self.max_retries < 0:
            raise ValueError(f"judge: max_retries must be >= 0, got {self.max_retries}")
        if not self.timeout_s > 0:
            raise ValueError(f"judge: timeout_s must be > 0, got {self.timeout_s}")
        if self.api_key is None:
            self.api_key = os.environ.get("SEGRL_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        u = self.url.rstrip("/")
        return u if u.endswith("/chat/completions") else u + "/chat/completions"

    def request_body(self, messages: list[dict]) -> dict:
        return {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}

    @staticmethod
    def request_key(body: dict) -> str:
        """SHA-256 hex of the canonical JSON of a request body (the cache key)."""
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _count(self, **inc: int) -> None:
        with self._lock:
            for k, v in inc.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    # cache
    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else Path(self.cache_dir) / key[:2] / f"{key}.json"

    def _cache_get(self, key: str, parse: Callable[[str], dict]) -> Verdict | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            reply = json.loads(path.read_text(encoding="utf-8"))["reply"]
            return Verdict(parse(reply), cached=True, reply=reply)
        except (OSError, ValueError, KeyError, TypeError):  # unreadable or no longer valid: ask again
            return None

    def _cache_put(self, key: str, body: dict, reply: str) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"key": key, "request": body, "reply": reply}, f, ensure_ascii=False)
        os.replace(tmp, path)

    # one request
    def _post(self, body: dict) -> str:
        """One HTTP round trip; returns the reply text.

        Raises:
            requests.Timeout, requests.ConnectionError: from ``requests``.
            _Retryable: HTTP 408/409/425/429/5xx.
            InvalidReply: a body without a text ``choices[0].message.content``.
            JudgeError: any other HTTP error status.
        """
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._count(requests=1)
        resp = requests.post(self.endpoint, json=body, headers=headers, timeout=self.timeout_s)
        if resp.status_code != 200:
            if resp.status_code in _RETRY_STATUS or resp.status_code >= 500:
                self._count(http_errors=1)
                raise _Retryable(f"HTTP {resp.status_code}")
            raise JudgeError(
                f"{self.endpoint}: HTTP {resp.status_code} for model {self.model!r}: {resp.text[:300]}"
            )
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise InvalidReply(
                f"response body is not a chat completion ({type(e).__name__}: {resp.text[:120]!r})"
            ) from None
        if not isinstance(content, str):
            raise InvalidReply(f"message content is {type(content).__name__}, not text")
        return content

    def ask(self, messages: list[dict], parse: Callable[[str], dict]) -> Verdict:
        """Ask once (with retries), through the cache.

        Args:
            messages: the chat messages.
            parse: ``parse_absolute`` or ``parse_pairwise`` (raises :class:`InvalidReply`).

        Returns:
            A :class:`Verdict`; ``parsed`` is None when every attempt failed.

        Raises:
            JudgeError: the endpoint refused every connection, or answered an HTTP error that
                retrying cannot fix.
        """
        body = self.request_body(messages)
        key = self.request_key(body)
        hit = self._cache_get(key, parse)
        if hit is not None:
            self._count(cache_hits=1)
            return hit
        reason, reply, refused = None, None, 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count(retries=1)
            try:
                reply = self._post(body)
                parsed = parse(reply)
            except requests.Timeout:
                reason, reply = f"timeout after {self.timeout_s:g}s", None
                self._count(timeouts=1)
                self._sleep(attempt)
                continue
            except requests.ConnectionError as e:
                reason, reply, refused = f"connection failed ({type(e).__name__})", None, refused + 1
                self._count(connection_errors=1)
                self._sleep(attempt)
                continue
            except _Retryable as e:
                reason = str(e)
                self._sleep(attempt)
                continue
            except InvalidReply as e:
                reason = f"invalid reply: {e}"
                self._count(invalid_replies=1)
                continue
            self._cache_put(key, body, reply)
            return Verdict(parsed, attempts=attempt + 1, reply=reply)
        if refused == self.max_retries + 1:
            raise JudgeError(f"{self.endpoint}: no connection in {refused} attempts ({reason})")
        self._count(missing=1)
        return Verdict(None, reason=reason, attempts=self.max_retries + 1, reply=reply)

    def _sleep(self, attempt: int) -> None:
        if attempt < self.max_retries and self.backoff_s > 0:
            time.sleep(self.backoff_s * 2**attempt)

    def describe(self) -> dict:
        """What results record about the judge (never the key)."""
        return {"model": self.model, "endpoint": self.endpoint, "prompt_version": PROMPT_VERSION,
                "temperature": self.temperature, "max_tokens": self.max_tokens,
                "max_retries": self.max_retries,
                "timeout_s": self.timeout_s}


class _Retryable(Exception):
    """An HTTP status worth retrying (408/409/425/429/5xx)."""


# --- the two modes ---------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _map(fn, items, workers: int) -> list:
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def judge_absolute(judge: ChatJudge, items: Sequence[dict], *, workers: int = 1) -> tuple[list[dict], dict]:
    """Absolute scores for every ``{"id", "prediction", "reference"}`` item.

    Returns:
        ``(records, summary)``: one record per item (``id``, ``status`` ``"ok"``/``"missing"``,
        the three scores or None, ``reason``, ``attempts``, ``cached``); the summary holds
        ``n``, ``n_scored``, ``n_missing``, ``mean`` per axis over the scored items, the judge
        (:meth:`ChatJudge.describe`) and its counters.

    Raises:
        JudgeError: see :meth:`ChatJudge.ask`.
    """
    before = JudgeStats(**asdict(judge.stats))
    def ask(it):
        return judge.ask(absolute_messages(it["reference"], it["prediction"]), parse_absolute)

    verdicts = _map(ask, items, workers)
    records = []
    for it, v in zip(items, verdicts):
        rec = {"id": it["id"], "status": "missing" if v.missing else "ok"}
        rec.update({a: (None if v.missing else v.parsed[a]) for a in AXES})
        rec.update(reason=v.reason, attempts=v.attempts, cached=v.cached)
        records.append(rec)
    scored = [r for r in records if r["status"] == "ok"]
    summary = {
        "mode": "absolute", "judge": judge.describe(), "n": len(records), "n_scored": len(scored),
        "n_missing": len(records) - len(scored), "mean": {a: _mean([r[a] for r in scored]) for a in AXES},
        "stats": _delta(before, judge.stats),
    }
    return records, summary


def judge_pairwise(
    judge: ChatJudge,
    items: Sequence[dict],
    *,
    seed: int = 0,
    names: tuple[str, str] = ("a", "b"),
    workers: int = 1,
) -> tuple[list[dict], dict]:
    """Pairwise verdicts for every ``{"id", "reference", "a", "b"}`` item (``a``/``b``: two runs' predictions).

    Run ``a`` is shown as caption A when :func:`a_shown_first` (else as B); the record keeps the
    order (``shown_as_A``: ``"a"`` or ``"b"``), the judge's raw verdict and the winner per axis
    in run terms (``"a"``, ``"b"`` or ``"tie"``).

    Returns:
        ``(records, summary)``; the summary counts, per axis, wins of ``a``, wins of ``b`` and
        ties over the judged items, ``win_rate_a`` = (wins of a + ties / 2) / judged, and
        ``a_shown_first`` (how often a was caption A).

    Raises:
        JudgeError: see :meth:`ChatJudge.ask`.
    """
    before = JudgeStats(**asdict(judge.stats))
    firsts = [a_shown_first(seed, str(it["id"])) for it in items]

    def ask(pair):
        it, a_first = pair
        first, second = (it["a"], it["b"]) if a_first else (it["b"], it["a"])
        return judge.ask(pairwise_messages(it["reference"], first, second), parse_pairwise)

    verdicts = _map(ask, list(zip(items, firsts)), workers)
    records = []
    for it, a_first, v in zip(items, firsts, verdicts):
        rec = {"id": it["id"], "status": "missing" if v.missing else "ok",
               "shown_as_A": "a" if a_first else "b"}
        if v.missing:
            rec.update(verdict=None, winner=None)
        else:
            to_run = {"A": "a" if a_first else "b", "B": "b" if a_first else "a", "tie": "tie"}
            rec.update(verdict=v.parsed, winner={ax: to_run[v.parsed[ax]] for ax in PAIRWISE_AXES})
        rec.update(reason=v.reason, attempts=v.attempts, cached=v.cached)
        records.append(rec)
    judged = [r for r in records if r["status"] == "ok"]
    per_axis = {}
    for ax in PAIRWISE_AXES:
        wins = Counter(r["winner"][ax] for r in judged)
        n = len(judged)
        per_axis[ax] = {"a": wins["a"], "b": wins["b"], "tie": wins["tie"],
                        "win_rate_a": (wins["a"] + 0.5 * wins["tie"]) / n if n else None}
    summary = {
        "mode": "pairwise", "judge": judge.describe(), "names": {"a": names[0], "b": names[1]}, "seed": seed,
        "n": len(records), "n_judged": len(judged), "n_missing": len(records) - len(judged),
        "a_shown_first": sum(firsts), "axes": per_axis, "stats": _delta(before, judge.stats),
    }
    return records, summary


def _delta(before: JudgeStats, after: JudgeStats) -> dict:
    return {k: getattr(after, k) - getattr(before, k) for k in asdict(after)}


# --- run directories -------------------------------------------------------------------------
def read_predictions(eval_dir: str | Path) -> list[dict]:
    """``predictions.jsonl`` of a ``segrl eval`` run: ``[{"id", "prediction", "reference"}]``.

    Raises:
        FileNotFoundError: no ``predictions.jsonl`` in ``eval_dir``.
        ValueError: a line that is not JSON or lacks ``id`` / ``completion`` / ``reference`` (file
            and line named).
    """
    path = Path(eval_dir) / "predictions.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run `segrl eval` first)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out.append({"id": str(rec["id"]), "prediction": rec["completion"] or "",
                        "reference": rec["reference"]})
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a prediction record ({type(e).__name__}: {e})") from None
    return out


def _write(out_dir: Path, stem: str, records: list[dict], summary: dict) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl, js = out_dir / f"{stem}.jsonl", out_dir / f"{stem}.json"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    js.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return {"records": jsonl, "summary": js}


def judge_run(judge: ChatJudge, eval_dir: str | Path, out_dir: str | Path | None = None, *,
              workers: int = 1) -> dict:
    """Absolute mode on one ``segrl eval`` run: writes ``absolute.jsonl`` / ``absolute.json`` to
    ``out_dir`` (default ``<eval_dir>/judge``); returns the summary (with ``run``)."""
    eval_dir = Path(eval_dir)
    records, summary = judge_absolute(judge, read_predictions(eval_dir), workers=workers)
    summary["run"] = str(eval_dir)
    _write(Path(out_dir) if out_dir else eval_dir / "judge", "absolute", records, summary)
    return summary


def judge_runs_pairwise(judge: ChatJudge, eval_a: str | Path, eval_b: str | Path, out_dir: str | Path, *,
                        seed: int = 0, workers: int = 1) -> dict:
    """Pairwise mode between two ``segrl eval`` runs of the same data, on the examples both hold.

    Writes ``pairwise.jsonl`` / ``pairwise.json`` to ``out_dir``; returns the summary (with
    ``runs`` and the counts of examples found in only one run).

    Raises:
        ValueError: no example in common, or an example whose reference differs between runs.
    """
    a, b = read_predictions(eval_a), read_predictions(eval_b)
    by_b = {r["id"]: r for r in b}
    items = []
    for r in a:
        other = by_b.get(r["id"])
        if other is None:
            continue
        if other["reference"] != r["reference"]:
            raise ValueError(
                f"example {r['id']!r}: the references of {eval_a} and {eval_b} differ (different data?)"
            )
        items.append({"id": r["id"], "reference": r["reference"], "a": r["prediction"],
                      "b": other["prediction"]})
    if not items:
        raise ValueError(f"{eval_a} and {eval_b} have no example in common")
    names = (str(eval_a), str(eval_b))
    records, summary = judge_pairwise(judge, items, seed=seed, names=names, workers=workers)
    summary["runs"] = {"a": str(eval_a), "b": str(eval_b)}
    summary["n_only_a"] = len(a) - len(items)
    summary["n_only_b"] = len(b) - len(items)
    _write(Path(out_dir), "pairwise", records, summary)
    return summary
