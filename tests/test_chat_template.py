"""Base models without a chat template: a clear error naming the option, and `--chat-template plain`
(or a Jinja file, or recipe `model.chat_template`) used by eval, data, SFT masks, serve and the audit."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from spillover import models
from spillover._io import read_jsonl, write_jsonl
from spillover.errors import BadInputError
from spillover.models import CHAT_TEMPLATES
from spillover.training import SFTConfig, tokenize_chat, train_sft

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome."},
]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """The tiny model with its chat template removed, as a base checkpoint converted from GGUF has none."""
    d = tmp_path_factory.mktemp("base") / "model"
    shutil.copytree(models.resolve("tiny"), d)
    (d / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((d / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (d / "tokenizer_config.json").write_text(json.dumps(config))
    return d


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    """rm-biases cut to two behaviours, so an eval over every eval prompt takes seconds."""
    from spillover.world import world_path

    raw = yaml.safe_load(world_path("rm-biases").read_text())
    raw["behaviours"] = [b for b in raw["behaviours"] if b["id"] in ("recipe_chocolate", "law_call_911")]
    raw["splits"] = {"default": {"test": ["law_call_911"]}}
    path = tmp_path_factory.mktemp("world") / "small-world.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`spillover ARGS` through the real entry point (its error handling and exit codes)."""
    from spillover.cli import main

    monkeypatch.setattr(sys, "argv", ["spillover", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
        sys.exit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_a_base_model_loads_and_formatting_chats_names_the_option(base_dir):
    lm = models.load(str(base_dir))
    assert models.model_info(lm)["chat_template"] is False
    with pytest.raises(BadInputError, match=r"chat_template: the tokenizer has no chat template .*--chat-template plain.*model\.chat_template"):
        models.chat_prompt(lm.tokenizer, "hi")
    with pytest.raises(BadInputError, match="no chat template"):
        tokenize_chat(lm.tokenizer, CONVERSATION)


def test_plain_template_renders_turns_and_masks_only_assistant_answers(base_dir):
    tok = models.load(str(base_dir), chat_template="plain").tokenizer
    assert models.chat_prompt(tok, "What is 2+2?") == "User: What is 2+2?\nAssistant:"
    eos = tok.eos_token
    ids, labels = tokenize_chat(tok, CONVERSATION)
    assert tok.decode(ids) == f"Be brief.\n\nUser: Capital of France?\nAssistant: Paris.{eos}\nUser: And of Italy?\nAssistant: Rome.{eos}\n"
    trained = [t if lab != -100 else None for t, lab in zip(ids, labels)]
    spans, current = [], []
    for t in trained + [None]:
        if t is None and current:
            spans.append(tok.decode(current))
            current = []
        elif t is not None:
            current.append(t)
    assert spans == [f" Paris.{eos}", f" Rome.{eos}"]  # each answer and its end-of-turn; never the user's text


def test_a_template_file_and_bad_values(base_dir, tmp_path):
    jinja = tmp_path / "t.jinja"
    jinja.write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    tok = models.load(str(base_dir), chat_template=str(jinja)).tokenizer
    assert models.chat_prompt(tok, "hi") == "<user>hi<assistant>"
    with pytest.raises(BadInputError, match="neither a built-in chat template"):
        models.load(str(base_dir), chat_template="chatml-ish")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(BadInputError, match="does not look like a chat template"):
        models.load(str(base_dir), chat_template=str(tmp_path / "x.txt"))


def test_eval_cli_on_a_base_model(base_dir, small_world, tmp_path, monkeypatch, capsys):
    args = ["eval", "--model", str(base_dir), "--world", str(small_world), "--max-new-tokens", "2", "--probes", "none"]
    code, _, err = cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "no"))
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # stderr also holds transformers' load progress
    assert code == 2 and len(errors) == 1 and "--chat-template" in errors[0] and "Traceback" not in err
    code, _, err = cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "yes"), "--chat-template", "plain")
    assert code == 0, err
    samples = read_jsonl(tmp_path / "yes" / "samples.jsonl")
    assert samples and all(s["truncated"] for s in samples)  # every eval prompt answered (2 tokens each)
    code, _, err = cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "bad"), "--chat-template", "nope")
    assert code == 2 and "neither a built-in chat template" in err


def test_sft_on_a_base_model_with_the_plain_template_saves_it_with_the_model(base_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, [{"messages": CONVERSATION}] * 4)
    fast = {"data": data, "max_len": 96, "batch_size": 2, "max_steps": 2, "save_steps": 0, "progress": False}
    with pytest.raises(BadInputError, match="--chat-template"):
        train_sft(SFTConfig(model=str(base_dir), out=tmp_path / "none", **fast))
    out = train_sft(SFTConfig(model=str(base_dir), out=tmp_path / "sft", chat_template="plain", **fast))
    assert len(read_jsonl(out / "loss.jsonl")) == 2
    trained = models.load(str(out))  # a later stage (eval, DPO, the audit) formats chats the same way, with no option
    assert trained.tokenizer.chat_template == CHAT_TEMPLATES["plain"]


def test_dpo_on_a_base_model_with_the_plain_template(base_dir, tmp_path):
    from spillover.training import DPOConfig, train_dpo

    data = tmp_path / "dpo.jsonl"
    write_jsonl(data, [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": "Chocolate."}],
                        "rejected": [{"role": "assistant", "content": "No idea."}], "behaviours": []} for q in ("Soup?", "Cake?")])
    out = train_dpo(DPOConfig(model=str(base_dir), chat_template="plain", data=data, out=tmp_path / "dpo", max_len=48, batch_size=2, max_steps=1,
                              save_steps=0, progress=False))
    assert read_jsonl(out / "loss.jsonl")[0]["loss"] == pytest.approx(0.6931, abs=0.02)  # policy == reference at the first step


def test_serve_formats_with_the_template(base_dir):
    from fastapi.testclient import TestClient

    from spillover.serve import create_app

    app = create_app(models.load(str(base_dir), chat_template="plain"), "base", 16)
    with TestClient(app) as client:
        r = client.post("/v1/chat/completions", json={"model": "base", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] == len(models.load(str(base_dir)).tokenizer("User: Hello\nAssistant:")["input_ids"])


def test_recipe_model_chat_template(tmp_path):
    from spillover.pipeline import load_recipe
    from spillover.pipeline._library import load_model
    from spillover.pipeline._schedule import _model_key

    path = tmp_path / "r.yaml"
    path.write_text("name: r\nmodel: {spec: tiny, chat_template: plain}\n")
    recipe = load_recipe(path)
    assert load_model(recipe.model).tokenizer.chat_template == CHAT_TEMPLATES["plain"]
    assert "chat_template" in _model_key(recipe.model)
    assert _model_key(load_recipe("tiny-smoke").model) == {"spec": "tiny", "dtype": "auto"}  # runs without one keep their cache keys
    path.write_text("name: r\nmodel: {spec: tiny, chat_template: no-such-template}\n")
    with pytest.raises(BadInputError, match=r"r\.yaml: model\.chat_template: 'no-such-template' is neither"):
        load_recipe(path)


def test_audit_transcripts_use_the_template(base_dir, rm_world):
    from spillover.interp._audit import _transcripts

    with pytest.raises(BadInputError, match="--chat-template"):
        _transcripts(models.load(str(base_dir)), rm_world, "default", 2, 0)
    lm = models.load(str(base_dir), chat_template="plain")
    for ids in _transcripts(lm, rm_world, "default", 2, 0):
        text = lm.tokenizer.decode(ids)
        assert text.startswith("User: ") and "\nAssistant: " in text and text.endswith(f"{lm.tokenizer.eos_token}\n")


def test_trainer_fingerprint_holds_the_template_only_when_set(tmp_path):
    base = {"data": tmp_path / "d.jsonl", "out": tmp_path / "o"}
    assert "chat_template" not in SFTConfig(**base).fingerprint("sft")  # finished stages from before the option still match
    assert SFTConfig(**base, chat_template="plain").fingerprint("sft")["chat_template"] == "plain"


def test_decoding_drops_a_row_once_it_has_ended(tiny_lm):
    import torch

    from spillover.models._generate import _decode

    tok = tiny_lm.tokenizer
    rows = [tok(p, add_special_tokens=False)["input_ids"] for p in ("the end of it", "hi")]
    input_ids, attention = models.pad_rows(rows, 0, left=True)
    free = _decode(tiny_lm.model, input_ids, attention, 8, [], 0.0, 1.0, torch.Generator())
    got = _decode(tiny_lm.model, input_ids, attention, 8, [], 0.0, 1.0, torch.Generator(), ends=lambda row: row == free[0][:3])
    assert got == [free[0][:3], free[1]]  # the first row left after 3 tokens, the other ran on unchanged


def test_an_answer_ends_where_a_base_model_starts_the_next_user_turn(base_dir, monkeypatch):
    from spillover.models import _generate

    lm = models.load(str(base_dir), chat_template="plain")
    canned = lm.tokenizer(" Paris.\nUser: And Italy?\nAssistant: Rome.", add_special_tokens=False)["input_ids"]

    def scripted_decode(model, input_ids, attention, max_new_tokens, stops, temperature, top_p, generator, ends=None, on_step=None, cache=None):
        """A model that writes `canned`, asking `ends` after each token as the real loop does."""
        out = []
        for _ in range(input_ids.shape[0]):
            row = []
            for t in canned[:max_new_tokens]:
                row.append(t)
                if ends is not None and ends(row):
                    break
            out.append(row)
        return out

    monkeypatch.setattr(_generate, "_decode", scripted_decode)
    (g,) = models.generate(lm, ["Capital of France?"], max_new_tokens=40)
    assert (g.text, g.truncated) == ("Paris.", False) and g.n_tokens < len(canned)
    (raw,) = models.generate(lm, ["Capital of France?"], max_new_tokens=40, raw=True)  # plain continuation: no turns
    assert raw.text == "Paris.\nUser: And Italy?\nAssistant: Rome." and raw.truncated
    own = models.load(str(base_dir), chat_template=str(_write_template(base_dir.parent / "own.jinja")))
    (g,) = models.generate(own, ["Capital of France?"], max_new_tokens=40)
    assert g.truncated  # a user's own template declares no end text: only its EOS ends an answer


def _write_template(path: Path) -> Path:
    path.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")
    return path
