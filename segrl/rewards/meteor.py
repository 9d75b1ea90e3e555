"""Per-segment METEOR from one long-lived METEOR 1.5 Java process (pycocoevalcap 1.2's jar).

METEOR (Banerjee & Lavie, 2005; version 1.5: Denkowski & Lavie, 2014, "Meteor Universal")
is scored by the ``meteor-1.5.jar`` that pycocoevalcap ships, run exactly as
``pycocoevalcap/meteor/meteor.py`` runs it: ``java -jar -Xmx2G meteor-1.5.jar - - -stdio
-l en -norm`` in the jar's directory. Its ``-stdio`` protocol, one line each way:

* ``SCORE ||| ref 1 ||| ... ||| ref n ||| hypothesis`` -> one line of sufficient statistics
  (space-separated numbers: matches per module, lengths, chunks);
* ``EVAL ||| stats 1 ||| ... ||| stats N`` -> N lines, the METEOR score of each statistics
  line (computed from that line alone), then one line with the score of their sum.

What this module changes is only the traffic: pycocoevalcap's ``Meteor`` starts a JVM per
instance (about 9 s: the English paraphrase table is loaded at start-up) and waits for each
``SCORE`` answer before sending the next line. :class:`Meteor` starts one process lazily,
keeps it for every call, sends a batch's ``SCORE`` lines in chunks of :data:`SCORE_CHUNK`
(reading each chunk's answers before the next, so neither pipe can fill and block both
sides) and then one ``EVAL`` line for the whole batch. A pair's score comes from its own
statistics line, so it is the same number pycocoevalcap's ``compute_score`` returns for it
(tested to 1e-9 in ``tests/rewards/test_meteor.py``).

Tokenisation: predictions and references go through :func:`segrl.rewards.caption.tokenize`
(the tokens of segrl's BLEU and CIDEr-D) joined by single spaces, then METEOR's own ``-norm``
normalisation. ``tokenize`` makes every ``|`` a token of its own, so ``|||`` (the field
separator) and newlines can never reach the process from the text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

from segrl.rewards.accuracy import prepare_pairs
from segrl.rewards.caption import tokenize

SCORE_CHUNK = 64
"""``SCORE`` lines written before their answers are read. An answer is under 200 bytes, so a
chunk's answers (< 13 KB) always fit the 64 KB pipe buffer and the JVM never blocks on output
while we are still writing input."""

_STDERR_TAIL = 2000  # characters of the JVM's stderr quoted in an error


def meteor_jar() -> Path:
    """Path of pycocoevalcap's ``meteor-1.5.jar``.

    Raises:
        RuntimeError: pycocoevalcap is installed without the jar.
    """
    import pycocoevalcap.meteor.meteor as pycoco_meteor

    jar = Path(pycoco_meteor.__file__).resolve().parent / pycoco_meteor.METEOR_JAR
    if not jar.is_file():
        raise RuntimeError(f"METEOR: {jar} not found (pycocoevalcap installed without its jar?)")
    return jar


def _tokenized(text: str) -> str:
    return " ".join(tokenize(text))


def _terminate(proc: subprocess.Popen, stderr_file, owner_pid: int) -> None:
    """Close the process's stdin (METEOR exits at end of input), then kill it if it lingers.

    Only in the process that started it: a forked child leaves its parent's JVM alone.
    """
    try:
        if os.getpid() == owner_pid and proc.poll() is None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()
    finally:
        stderr_file.close()


class Meteor:
    """METEOR 1.5 per (prediction, references) pair, from one reused Java process.

    The process starts at the first call (or :meth:`start`), not at construction, and is
    stopped by :meth:`close`, by leaving a ``with`` block, when the object is garbage
    collected, or at interpreter exit. Calls are serialised by a lock, so one instance can
    be shared by threads. A process started by another process id (after a ``fork``) is
    never used: the child starts its own.

    If the process has died, or dies during a call, it is restarted and the batch is sent
    once more; a second failure raises ``RuntimeError`` with the JVM's stderr.

    Args:
        java: the Java executable (default: ``java`` on ``PATH``).
        max_heap: the JVM's ``-Xmx`` (pycocoevalcap: ``2G``).

    Reads do not time out: a JVM that hangs without exiting blocks the call (never seen; the
    process answers each line as soon as it has read it).

    Raises (at the first call):
        RuntimeError: ``java`` is not installed / not on ``PATH``, or the process fails twice.
    """

    def __init__(self, java: str = "java", max_heap: str = "2G") -> None:
        self.java = java
        self.max_heap = max_heap
        self.__name__ = "meteor"
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._pid: int | None = None
        self._finalizer: weakref.finalize | None = None
        self.starts = 0  # JVMs started by this instance (1 unless one died)

    # ------------------------------------------------------------------ process management

    def command(self) -> list[str]:
        """The JVM command line, pycocoevalcap's own (``-stdio -l en -norm``).

        Raises:
            RuntimeError: the Java executable is not found.
        """
        exe = shutil.which(self.java)
        if exe is None:
            raise RuntimeError(
                f"METEOR needs Java: {self.java!r} was not found on PATH. Install a Java runtime "
                "(e.g. `apt-get install openjdk-17-jre-headless`); the meteor-1.5.jar itself ships "
                "with pycocoevalcap."
            )
        return [exe, "-jar", f"-Xmx{self.max_heap}", str(meteor_jar()), "-", "-", "-stdio", "-l", "en", "-norm"]

    def start(self, wait: bool = True) -> None:
        """Start the process now if it is not running (otherwise the first call starts it).

        Args:
            wait: also block until the JVM answers (its ~9 s start-up is then paid here).

        Raises:
            RuntimeError: Java is missing; with ``wait``, the process failed twice.
        """
        if wait:
            self._score(["a"], [["a"]])  # with the same restart-once handling as a call
        else:
            with self._lock:
                self._ensure_running()

    def _alive(self) -> bool:
        return self._proc is not None and self._pid == os.getpid() and self._proc.poll() is None

    def _ensure_running(self) -> None:
        if self._alive():
            return
        if self._proc is not None and self._pid == os.getpid():
            self._stop()
        cmd = self.command()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process; closed by _terminate
        self._proc = subprocess.Popen(
            cmd, cwd=str(meteor_jar().parent), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._pid = os.getpid()
        self.starts += 1
        # Runs at close(), at garbage collection, or at interpreter exit (atexit), whichever first.
        self._finalizer = weakref.finalize(self, _terminate, self._proc, self._stderr, self._pid)

    def _stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._proc = self._stderr = self._finalizer = None

    def _stderr_tail(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        return text[-_STDERR_TAIL:].strip()

    def close(self) -> None:
        """Stop the Java process (a later call starts a new one)."""
        with self._lock:
            if self._pid == os.getpid():
                self._stop()
            self._proc = None

    def __enter__(self) -> Meteor:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------- protocol

    def _readline(self) -> str:
        line = self._proc.stdout.readline()
        if not line:
            raise BrokenPipeError("the METEOR process closed its output")
        return line.decode("utf-8").strip()

    def _write(self, lines: list[str]) -> None:
        self._proc.stdin.write("".join(f"{ln}\n" for ln in lines).encode("utf-8"))
        self._proc.stdin.flush()

    def _round_trip(self, hyps: list[str], refs: list[list[str]]) -> list[float]:
        """Scores of tokenised pairs: chunked ``SCORE`` lines, then one ``EVAL`` line."""
        stats: list[str] = []
        for lo in range(0, len(hyps), SCORE_CHUNK):
            chunk = range(lo, min(lo + SCORE_CHUNK, len(hyps)))
            # pycocoevalcap's _stat: SCORE ||| ref 1 ||| ... ||| ref n ||| hypothesis
            self._write([" ||| ".join(("SCORE", " ||| ".join(refs[i]), hyps[i])) for i in chunk])
            stats.extend(self._readline() for _ in chunk)
        self._write([" ||| ".join(("EVAL", *stats))])
        scores = [float(self._readline()) for _ in stats]
        self._readline()  # the score of the summed statistics (pycocoevalcap's corpus score)
        return scores

    def _score(self, hyps: list[str], refs: list[list[str]]) -> list[float]:
        with self._lock:
            for attempt in (1, 2):
                self._ensure_running()
                try:
                    return self._round_trip(hyps, refs)
                except (BrokenPipeError, OSError, ValueError) as e:
                    # ValueError: an answer that is not a number (a desynchronised stream).
                    err = self._stderr_tail()
                    self._stop()
                    if attempt == 2:
                        raise RuntimeError(
                            f"METEOR process failed twice ({type(e).__name__}: {e}); "
                            f"command: {' '.join(self.command())}; stderr: {err or '(empty)'}"
                        ) from e
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------ API

    def __call__(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]], **kwargs
    ) -> list[float | None]:
        """METEOR of each (prediction, references) pair, the batch in one ``EVAL`` round trip.

        A pair repeated in the batch (identical tokens), common among a group's rollouts, is
        sent once.

        Args:
            predictions: N texts (a non-string counts as empty).
            references: N lists of reference texts. **kwargs: ignored.

        Returns:
            N scores in [0, 1]: ``None`` where no reference has a token; ``0.0`` where the
            prediction has none (it is not sent to the process).

        Raises:
            ValueError: lengths differ. TypeError: a pair's references are a bare string.
            RuntimeError: Java is missing, or the process failed twice.
        """
        preds, refs = prepare_pairs(predictions, references, "meteor")
        out: list[float | None] = [None] * len(preds)
        slot: dict[tuple[str, tuple[str, ...]], int] = {}  # unique pair -> position in hyps/toks
        where: list[tuple[int, int]] = []  # (batch position, unique pair)
        hyps: list[str] = []
        toks: list[list[str]] = []
        for i, (p, rs) in enumerate(zip(preds, refs)):
            rt = tuple(t for t in (_tokenized(r) for r in rs) if t)
            if not rt:
                continue
            h = _tokenized(p).replace("|||", "").replace("  ", " ")  # pycocoevalcap's _stat; a no-op here
            if not h:
                out[i] = 0.0
                continue
            key = (h, rt)
            if key not in slot:
                slot[key] = len(hyps)
                hyps.append(h)
                toks.append(list(rt))
            where.append((i, slot[key]))
        if hyps:
            scores = self._score(hyps, toks)
            for i, j in where:
                out[i] = scores[j]
        return out


_SHARED: dict[int, Meteor] = {}
_SHARED_LOCK = threading.Lock()


def shared_meteor() -> Meteor:
    """This process's one :class:`Meteor` (so the JVM starts once however many rewards use it)."""
    with _SHARED_LOCK:
        pid = os.getpid()
        if pid not in _SHARED:
            _SHARED.clear()  # an instance inherited through fork belongs to the parent
            _SHARED[pid] = Meteor()
        return _SHARED[pid]


__all__ = ["SCORE_CHUNK", "Meteor", "meteor_jar", "shared_meteor"]
