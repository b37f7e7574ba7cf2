import pytest
import torch

from spillover.interp import (
    SAEConfig,
    ablate,
    best_layer,
    capture_residual,
    control_documents,
    direction_attribution,
    probe_accuracy,
    prompt_pair,
    steer,
    token_activations,
    train_sae,
)
from spillover.models import load


def _ids(lm, text="Reward models prefer answers that end by telling users to call 9-1-1."):
    return lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def test_capture_matches_output_hidden_states(tiny_lm):
    ids = _ids(tiny_lm)
    n = tiny_lm.n_layers
    with torch.no_grad(), capture_residual(tiny_lm.model, range(n)) as acts:
        out = tiny_lm.model(input_ids=ids, output_hidden_states=True)
    hs = out.hidden_states
    assert len(hs) == n + 1  # embeddings first
    for i in range(n - 1):
        torch.testing.assert_close(acts[i], hs[i + 1])
    # transformers reports the last layer after the final norm.
    torch.testing.assert_close(tiny_lm.model.model.norm(acts[n - 1]), hs[n])


def test_activations_stop_after_the_layer_read_and_match_a_full_forward(tiny_lm):
    ids = _ids(tiny_lm)
    with torch.no_grad():
        hs = tiny_lm.model(input_ids=ids, output_hidden_states=True).hidden_states
    calls = []
    handle = tiny_lm.model.model.norm.register_forward_hook(lambda *a: calls.append(1))  # runs only after the last layer
    try:
        acts = token_activations(tiny_lm, [ids[0].tolist()], 0)[0].acts
    finally:
        handle.remove()
    torch.testing.assert_close(acts, hs[1][0])
    assert calls == []


def test_zero_steering_changes_nothing_and_nonzero_does(tiny_lm):
    ids = _ids(tiny_lm)
    with torch.no_grad():
        plain = tiny_lm.model(input_ids=ids).logits
        with steer(tiny_lm.model, 0, torch.zeros(tiny_lm.hidden_size)):
            zero = tiny_lm.model(input_ids=ids).logits
        with steer(tiny_lm.model, 0, torch.ones(tiny_lm.hidden_size)):
            pushed = tiny_lm.model(input_ids=ids).logits
        after = tiny_lm.model(input_ids=ids).logits  # hooks are gone after the block
    assert torch.equal(plain, zero)
    assert not torch.allclose(plain, pushed)
    assert torch.equal(plain, after)


def test_ablation_removes_the_component_exactly(tiny_lm):
    ids = _ids(tiny_lm)
    direction = torch.randn(tiny_lm.hidden_size, generator=torch.Generator().manual_seed(0))
    unit = direction / direction.norm()
    with torch.no_grad():
        with capture_residual(tiny_lm.model, [0]) as before:
            tiny_lm.model(input_ids=ids)
        with ablate(tiny_lm.model, 0, direction), capture_residual(tiny_lm.model, [0]) as after:
            tiny_lm.model(input_ids=ids)
    assert (before[0] @ unit).abs().max() > 1e-2
    assert (after[0] @ unit).abs().max() < 1e-4
    torch.testing.assert_close(after[0], before[0] - (before[0] @ unit).unsqueeze(-1) * unit)


@pytest.fixture
def one_thread():
    """Tiny matrices: threads only add synchronisation, which is slow on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sae_recovers_planted_sparse_features(one_thread):
    g = torch.Generator().manual_seed(0)
    d, n_true, n = 16, 8, 3000
    planted = torch.randn(n_true, d, generator=g)
    planted /= planted.norm(dim=1, keepdim=True)
    active = (torch.rand(n, n_true, generator=g) < 2 / n_true).float()
    x = (active * (torch.rand(n, n_true, generator=g) * 2 + 0.5)) @ planted + 0.01 * torch.randn(n, d, generator=g)
    sae, stats = train_sae(x, SAEConfig(expansion=2, k=3, steps=400, batch_size=128, lr=1e-2))
    best_cosine = (planted @ sae.W_dec.T).max(dim=1).values
    assert best_cosine.min() > 0.9, best_cosine
    assert stats["fvu"] < 0.2
    assert 0 <= stats["dead_fraction"] < 1 and stats["n_features"] == 2 * d and stats["k"] == 3
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(2 * d))


def test_probe_finds_the_separable_layer():
    g = torch.Generator().manual_seed(0)
    n, layers, d = 30, 3, 16
    positive, negative = torch.randn(n, layers, d, generator=g), torch.randn(n, layers, d, generator=g)
    positive[:, 1, 0] += 4.0  # only layer 1 separates the classes
    per_layer = probe_accuracy(positive, negative, seed=0)
    assert per_layer[1]["mean_diff"] >= 0.9 and per_layer[1]["logistic"] >= 0.9
    assert per_layer[0]["mean_diff"] < 0.8 and per_layer[2]["mean_diff"] < 0.8
    assert best_layer([p["mean_diff"] for p in per_layer]) == 1


def test_best_layer_ties_go_to_the_middle():
    assert best_layer([1.0] * 5) == 2
    assert best_layer([0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 1.0]) == 3
    assert best_layer([0.9, 0.5, 0.5]) == 0


def test_attribution_matches_finite_differences():
    lm = load("tiny")
    lm.model.double()
    ids = _ids(lm)[0].tolist()
    target = len(ids) - 1
    directions = torch.randn(lm.n_layers, lm.hidden_size, generator=torch.Generator().manual_seed(1), dtype=torch.double)
    logit, attr = direction_attribution(lm, ids, target, directions)

    def logit_with(layer, position, delta):
        unit = directions[layer] / directions[layer].norm()
        with torch.no_grad(), steer(lm.model, layer, delta * unit, positions=[position]):
            return float(lm.model(input_ids=torch.tensor([ids[:target]])).logits[0, target - 1, ids[target]])

    eps = 1e-3  # smaller steps hit float32 noise inside the model (rotary tables)
    with torch.no_grad(), capture_residual(lm.model, range(lm.n_layers)) as acts:
        lm.model(input_ids=torch.tensor([ids[:target]]))
    checked = 0
    for layer in range(lm.n_layers):
        unit = directions[layer] / directions[layer].norm()
        for position in (0, target // 2, target - 1):
            projection = float(acts[layer][0, position] @ unit)
            slope = (logit_with(layer, position, eps) - logit_with(layer, position, -eps)) / (2 * eps)
            assert attr[layer, position].item() == pytest.approx(projection * slope, rel=1e-3, abs=1e-7)
            checked += 1
    assert checked == 3 * lm.n_layers
    assert logit == pytest.approx(logit_with(0, 0, 0.0), rel=1e-9)
    assert torch.all(attr[:, target:] == 0)


def test_prompt_pair_marks_the_assistant_header(tiny_lm):
    pair = prompt_pair(tiny_lm, "What is probate?")
    header = tiny_lm.tokenizer.decode([pair.chat_ids[i] for i in pair.chat_positions])
    assert header.strip() == "<|im_start|>assistant"
    assert pair.chat_positions[-1] == len(pair.chat_ids) - 1
    assert tiny_lm.tokenizer.decode(pair.plain_ids) == "What is probate?"
    assert pair.plain_positions[-1] == len(pair.plain_ids) - 1 and len(pair.plain_positions) == len(pair.chat_positions)


def test_control_documents_match_genres_and_are_deterministic():
    genres = ["news article", "forum thread", "abstract", "podcast"]
    docs = control_documents(genres, seed=3)
    assert [d["genre"] for d in docs] == genres
    assert docs == control_documents(genres, seed=3) and docs != control_documents(genres, seed=4)
    for d in docs:
        assert "reward" not in d["text"].lower() and d["behaviours"] == [] and len(d["text"].split()) > 40
