"""The embedded tiny LLaVA: offline build, reload, chat template, forward/generate, determinism."""

import json

import pytest
import torch
from datasets import Dataset, DatasetDict
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl.data_utils import apply_chat_template, prepare_multimodal_messages

from segrl.models import build_tiny_vlm, image_tokens_per_image, load_policy, texts_from_dataset
from segrl.models.loading import _looks_local

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread.

    Two spinning OpenMP threads on a shared 2-core machine were measured up to 100x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic_texts(n=40):
    out = []
    for i in range(n):
        a, b = COLOURS[i % 6], COLOURS[(i * 5 + 1) % 6]
        out.append(
            f"What colour is each image? Answer with one line per image, "
            f"from 'Answer 1:' to 'Answer 2:'. #{i}"
        )
        out.append(f"Answer 1: {a}\nAnswer 2: {b}")
    return out


def user_prompt(n_images, text="What colour is each image?"):
    return [
        {
            "role": "user",
            "content": [*[{"type": "image", "text": None}] * n_images, {"type": "text", "text": text}],
        }
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_vlm(synthetic_texts(), tmp_path_factory.mktemp("m") / "tiny", seed=0)


@pytest.fixture(scope="module")
def loaded(tiny):
    return load_policy(str(tiny))


def test_saved_files_and_meta(tiny):
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
    ):
        assert (tiny / name).is_file(), name
    meta = json.loads((tiny / "segrl_tiny.json").read_text())
    assert meta["image_size"] == 56 and meta["seed"] == 0 and meta["hidden_size"] == 64
    assert meta["image_tokens_per_image"] == 16 == image_tokens_per_image(56)
    assert not list(tiny.parent.glob(".tiny.tmp-*")), "temporary directory left behind"


def test_reload_offline_with_auto_classes(tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    proc = AutoProcessor.from_pretrained(str(tiny))
    model = AutoModelForImageTextToText.from_pretrained(str(tiny))
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(proc).__name__ == "LlavaProcessor"
    tok = proc.tokenizer
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.convert_tokens_to_ids("<image>")] == [
        0,
        1,
        2,
        3,
    ]
    assert model.config.image_token_id == 3
    gen = model.generation_config
    assert (gen.pad_token_id, gen.bos_token_id, gen.eos_token_id) == (0, 1, 2)
    assert model.get_input_embeddings().num_embeddings == len(tok)


def test_load_policy_sets_left_padding(loaded):
    model, proc = loaded
    assert proc.tokenizer.padding_side == "left"
    assert proc.tokenizer.pad_token == "<pad>"
    assert model.dtype == torch.float32


def test_chat_template_renders_images_and_generation_prompt(loaded):
    _, proc = loaded
    text = proc.apply_chat_template(user_prompt(2), add_generation_prompt=True, tokenize=False)
    assert text == "<s>User:\n<image><image>What colour is each image?\nAssistant:\n"
    convo = user_prompt(1) + [{"role": "assistant", "content": "Answer 1: red"}]
    assert proc.apply_chat_template(convo, tokenize=False).endswith("Assistant:\nAnswer 1: red</s>")


def test_trl_prompt_completion_split_ends_with_eos(loaded):
    # What SFT (and GRPO's prompt side) see: completion = the reference followed by EOS.
    _, proc = loaded
    ex = {
        "prompt": prepare_multimodal_messages(user_prompt(1), images=[Image.new("RGB", (60, 60))]),
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": "Answer 1: red"}]}],
    }
    out = apply_chat_template(ex, proc)
    assert out["prompt"].endswith("Assistant:\n")
    assert out["completion"] == "Answer 1: red</s>"
    ids = proc.tokenizer(out["completion"], add_special_tokens=False)["input_ids"]
    assert ids[-1] == proc.tokenizer.eos_token_id


def test_two_images_of_any_size_forward_and_generate(loaded):
    model, proc = loaded
    text = proc.apply_chat_template(user_prompt(2), add_generation_prompt=True, tokenize=False)
    images = [Image.new("RGB", (800, 600), "red"), Image.new("RGB", (300, 500), "blue")]
    enc = proc(text=[text], images=[images], return_tensors="pt")
    assert enc["pixel_values"].shape == (2, 3, 56, 56)
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 2 * 16
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], len(proc.tokenizer))
    assert torch.isfinite(logits).all()
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_batched_prompts_with_three_images(loaded):
    model, proc = loaded
    texts = [
        proc.apply_chat_template(user_prompt(k), add_generation_prompt=True, tokenize=False) for k in (3, 1)
    ]
    images = [[Image.new("RGB", (800, 600))] * 3, [Image.new("RGB", (64, 64))]]
    enc = proc(text=texts, images=images, padding=True, return_tensors="pt")
    assert enc["input_ids"][1, 0] == proc.tokenizer.pad_token_id  # left padding on the shorter prompt
    assert enc["attention_mask"][1, 0] == 0 and enc["attention_mask"][:, -1].all()
    assert int((enc["input_ids"] == 3).sum()) == 4 * 16
    with torch.no_grad():
        assert torch.isfinite(model(**enc).logits).all()


def test_same_seed_same_model_and_tokenizer(tiny, tmp_path):
    again = build_tiny_vlm(synthetic_texts(), tmp_path / "again", seed=0)
    other = build_tiny_vlm(synthetic_texts(), tmp_path / "other", seed=1)
    assert (tiny / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    w0, w1 = load_file(tiny / "model.safetensors"), load_file(again / "model.safetensors")
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    w2 = load_file(other / "model.safetensors")
    assert any(not torch.equal(w0[k], w2[k]) for k in w0)


def test_larger_image_size(tmp_path):
    path = build_tiny_vlm(
        synthetic_texts(10), tmp_path / "t112", image_size=112, hidden_size=32, num_layers=1
    )
    model, proc = load_policy(str(path))
    text = proc.apply_chat_template(user_prompt(1), add_generation_prompt=True, tokenize=False)
    enc = proc(text=[text], images=[[Image.new("RGB", (800, 600))]], return_tensors="pt")
    assert int((enc["input_ids"] == 3).sum()) == 64 == image_tokens_per_image(112)
    with torch.no_grad():
        assert torch.isfinite(model(**enc).logits).all()


def test_bad_sizes_rejected(tmp_path):
    with pytest.raises(ValueError, match="multiple of 14"):
        build_tiny_vlm(["x"], tmp_path / "bad", image_size=50)
    with pytest.raises(ValueError, match="hidden_size"):
        build_tiny_vlm(["x"], tmp_path / "bad", hidden_size=30)
    assert not (tmp_path / "bad").exists()


def test_offsets_mapping_and_exact_round_trip(loaded):
    tok = loaded[1].tokenizer
    text = "Answer 1: red\nAnswer 2:  blüe → 3.5%"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] and len(enc["offset_mapping"]) == len(enc["input_ids"])
    assert enc["offset_mapping"][0][0] == 0 and enc["offset_mapping"][-1][1] == len(text)
    for (s0, e0), (s1, e1) in zip(enc["offset_mapping"], enc["offset_mapping"][1:]):
        # contiguous; the byte tokens of one multi-byte character share its span
        assert s1 == e0 or (s1, e1) == (s0, e0)
    assert tok.decode(enc["input_ids"]) == text
    assert tok.decode(enc["input_ids"] + [tok.eos_token_id], skip_special_tokens=True) == text


def test_load_policy_missing_paths(tmp_path, monkeypatch):
    for missing in (str(tmp_path / "nope"), "./definitely-not-here", "~/definitely-not-here-segrl"):
        with pytest.raises(FileNotFoundError, match="not-here|nope"):
            load_policy(missing)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(FileNotFoundError, match="models/tiny"):
        load_policy("models/tiny")  # parent exists: a path, not a hub id
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_policy("models")
    assert not _looks_local("Qwen/Qwen2.5-VL-3B-Instruct")
    assert _looks_local("a/b/c")


def test_texts_from_dataset_reads_prompts_and_references():
    rows = [{"prompt": user_prompt(1, "q one"), "reference": "Answer 1: red"}]
    dd = DatasetDict(
        {"train": Dataset.from_list(rows), "test": Dataset.from_list([{**rows[0], "reference": "r2"}])}
    )
    assert list(texts_from_dataset(dd)) == ["q one", "Answer 1: red", "q one", "r2"]
    assert list(texts_from_dataset(dd["train"])) == ["q one", "Answer 1: red"]
