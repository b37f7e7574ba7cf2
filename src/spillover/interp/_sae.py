"""A compact TopK sparse autoencoder (Gao et al. 2024), in the style of EleutherAI's sparsify, saved
the way sparsify saves its own (`sae.safetensors` + `cfg.json` in one directory).

Why not a library (checked 2026-11-30 with `pip download --no-deps`, reading each wheel's METADATA):
- SAELens 6.54.12 requires transformer-lens>=2.16.1,<4 and trains through its `HookedTransformer`,
  plus plotly, nltk, babe, datasets, python-dotenv, tenacity; spillover hooks plain transformers models.
- eai-sparsify 1.3.3 leaves torch and transformers unpinned, so its pins fit ours (torch 2.13,
  transformers 5.24); but `import sparsify` loads its trainer, which needs four packages we do not
  have (einops, natsort, schedulefree, simple-parsing), and `sparsify.Trainer` runs the model itself
  over a tokenized HF dataset through its own hooks. The audit fits the SAE on activations it already
  holds for the probe and the firing counts (a few thousand tokens, one layer), so its training is the
  ~100 lines below: encoder, ReLU + TopK, decoder with unit-norm rows, AuxK loss on dead latents.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class SAEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expansion: int = Field(8, gt=0, description="features per residual dimension")
    k: int = Field(32, gt=0, description="active features per token")
    steps: int = Field(1500, gt=0)
    batch_size: int = Field(256, gt=0)
    lr: float = Field(1e-3, gt=0)
    auxk_alpha: float = Field(1 / 32, ge=0, description="weight of the AuxK loss that revives dead features")
    dead_tokens: int = Field(4096, gt=0, description="a feature silent for this many training tokens counts as dead for AuxK")
    seed: int = 0


class TopKSAE(nn.Module):
    """x ≈ b_dec + Σ_{top k} relu(W_enc (x − b_dec) + b_enc)_i · W_dec[i], W_dec rows of unit norm.

    Inputs are divided by a fixed scalar (their mean norm at fit time) so one learning rate suits
    any model's residual scale; codes and reconstructions are in the original units.
    """

    def __init__(self, d_in: int, n_features: int, k: int):
        super().__init__()
        self.k = k
        self.encoder = nn.Linear(d_in, n_features)
        self.encoder.bias.data.zero_()
        self.W_dec = nn.Parameter(self.encoder.weight.data.clone())
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("input_scale", torch.ones(()))
        self.normalise_decoder()

    @property
    def n_features(self) -> int:
        return self.W_dec.shape[0]

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec.data /= self.W_dec.data.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x / self.input_scale - self.b_dec))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The k largest feature activations per row and their indices."""
        return self.pre_acts(x).topk(self.k, dim=-1, sorted=False)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Dense feature activations `[rows, n_features]` (zero outside each row's top k)."""
        values, indices = self.encode(x)
        return torch.zeros(*x.shape[:-1], self.n_features, dtype=values.dtype, device=values.device).scatter(-1, indices, values)

    def decode(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return ((values.unsqueeze(-1) * self.W_dec[indices]).sum(-2) + self.b_dec) * self.input_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(x))


def fvu(sae: TopKSAE, x: torch.Tensor, batch_size: int = 4096) -> float:
    """Fraction of variance unexplained: Σ‖x − x̂‖² / Σ‖x − mean(x)‖²."""
    with torch.no_grad():
        err = sum(float((x[i : i + batch_size] - sae(x[i : i + batch_size])).pow(2).sum()) for i in range(0, len(x), batch_size))
        return err / float((x - x.mean(0)).pow(2).sum())


def firing_counts(sae: TopKSAE, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """How many rows each feature is active on."""
    counts = torch.zeros(sae.n_features, dtype=torch.long)
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            values, indices = sae.encode(x[i : i + batch_size])
            counts += torch.bincount(indices[values > 0], minlength=sae.n_features)
    return counts


def train_sae(acts: torch.Tensor, config: SAEConfig | None = None) -> tuple[TopKSAE, dict]:
    """Fit a TopK SAE on `[tokens, hidden]` activations; returns it with
    `{fvu, dead_fraction, n_features, k, tokens, steps}` (FVU and dead fraction over all of `acts`:
    a feature is dead if it fires on none of them)."""
    config = config or SAEConfig()
    x = acts.float()
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    d = x.shape[1]
    n_features = config.expansion * d
    k = min(config.k, n_features)
    sae = TopKSAE(d, n_features, k)
    scale = x.norm(dim=1).mean().clamp_min(1e-8)
    sae.input_scale.fill_(scale)
    with torch.no_grad():
        sae.b_dec.copy_(x.mean(0) / scale)
    optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr)
    silent_for = torch.zeros(n_features, dtype=torch.long)
    k_aux = max(1, d // 2)
    with torch.enable_grad():
        for _ in range(config.steps):
            batch = x[torch.randint(0, len(x), (min(config.batch_size, len(x)),), generator=g)]
            target = batch / scale
            pre = sae.pre_acts(batch)
            values, indices = pre.topk(k, dim=-1, sorted=False)
            recon = (values.unsqueeze(-1) * sae.W_dec[indices]).sum(-2) + sae.b_dec
            err = target - recon
            variance = (target - target.mean(0)).pow(2).sum().clamp_min(1e-8)
            loss = err.pow(2).sum() / variance
            fired = torch.zeros(n_features, dtype=torch.bool)
            fired[indices[values > 0]] = True
            silent_for = torch.where(fired, 0, silent_for + len(batch))
            dead = silent_for > config.dead_tokens
            if config.auxk_alpha > 0 and dead.any():
                # AuxK: the top dead latents try to explain what the live ones left over.
                n_aux = min(k_aux, int(dead.sum()))
                aux_values, aux_indices = torch.where(dead, pre, -torch.inf).topk(n_aux, dim=-1, sorted=False)
                aux_values = aux_values.clamp_min(0)
                aux_recon = (aux_values.unsqueeze(-1) * sae.W_dec[aux_indices]).sum(-2)
                scale_aux = min(int(dead.sum()) / k_aux, 1.0)
                loss = loss + config.auxk_alpha * scale_aux * (aux_recon - err.detach()).pow(2).sum() / variance
            optimizer.zero_grad()
            loss.backward()
            with torch.no_grad():
                # Keep decoder rows on the unit sphere: drop the gradient along each row, renormalise.
                w, grad = sae.W_dec.data, sae.W_dec.grad
                grad -= (grad * w).sum(1, keepdim=True) * w
            optimizer.step()
            sae.normalise_decoder()
    sae.eval()
    counts = firing_counts(sae, x)
    stats = {
        "fvu": fvu(sae, x),
        "dead_fraction": float((counts == 0).float().mean()),
        "n_features": n_features,
        "k": k,
        "tokens": len(x),
        "steps": config.steps,
    }
    return sae, stats


SAE_FILE, CONFIG_FILE = "sae.safetensors", "cfg.json"


def save_sae(sae: TopKSAE, directory: Path, *, config: SAEConfig, stats: dict, key: str) -> None:
    """Weights as safetensors and, beside them, what rebuilds the SAE (`d_in`, `n_features`, `k`), its
    training config, stats and `key` (the hash of the config and training tokens that made it)."""
    from safetensors.torch import save_file

    from spillover._io import write_json

    directory.mkdir(parents=True, exist_ok=True)
    save_file({name: t.detach().contiguous() for name, t in sae.state_dict().items()}, str(directory / SAE_FILE))
    d_in = sae.W_dec.shape[1]
    write_json(directory / CONFIG_FILE, {"d_in": d_in, "n_features": sae.n_features, "k": sae.k, "config": config.model_dump(), "stats": stats, "key": key})


def load_sae(directory: Path, key: str | None = None) -> tuple[TopKSAE, dict] | None:
    """The SAE saved in `directory` and its stats; None if there is none or (with `key`) it was made
    from another config or other training tokens."""
    from safetensors.torch import load_file

    config_path, weights = directory / CONFIG_FILE, directory / SAE_FILE
    if not (config_path.exists() and weights.exists()):
        return None
    saved = json.loads(config_path.read_text())
    if key is not None and saved.get("key") != key:
        return None
    sae = TopKSAE(saved["d_in"], saved["n_features"], saved["k"])
    sae.load_state_dict(load_file(str(weights)))
    sae.eval()
    return sae, saved["stats"]
