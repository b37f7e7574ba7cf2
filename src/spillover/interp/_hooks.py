"""Residual-stream hooks on the decoder layers, in plain PyTorch (no hooked-model wrapper).

"Layer i" everywhere in spillover.interp is the output of decoder layer i: the residual stream
after block i. With `output_hidden_states=True`, transformers returns the embeddings first, so
layer i is `hidden_states[i + 1]` — except the last layer, whose hidden state transformers
reports after the final norm.

Hooks stay registered while `generate` runs (every new token's forward passes through them), so
steering a model's answers is: enter `steer(...)`, sample, leave.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a causal LM (also under a PEFT wrapper): the first `*.layers` list."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] == "layers" and len(module) > 0:
            return module
    raise ValueError(f"{type(model).__name__} has no `layers` ModuleList of decoder blocks")


def _residual(output) -> torch.Tensor:
    return output if torch.is_tensor(output) else output[0]


def _replace_residual(output, residual: torch.Tensor):
    if torch.is_tensor(output):
        return residual
    return (residual, *output[1:])


@contextlib.contextmanager
def _layer_hooks(model: nn.Module, hooks: dict[int, Callable]) -> Iterator[None]:
    layers = decoder_layers(model)
    handles = []
    try:
        for index, hook in hooks.items():
            if not 0 <= index < len(layers):
                raise ValueError(f"layer {index} out of range: the model has {len(layers)} decoder layers")
            handles.append(layers[index].register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def capture_residual(model: nn.Module, layers: Sequence[int], *, keep_grad: bool = False) -> Iterator[dict[int, torch.Tensor]]:
    """Record each listed layer's output `[batch, tokens, hidden]` into the yielded dict.

    One forward fills it (a later forward overwrites it). `keep_grad=True` keeps the tensors in
    the autograd graph, for gradients with respect to the residual stream (attribution);
    otherwise they are detached.
    """
    captured: dict[int, torch.Tensor] = {}

    def make(index: int):
        def hook(module, args, output):
            residual = _residual(output)
            captured[index] = residual if keep_grad else residual.detach()

        return hook

    with _layer_hooks(model, {i: make(i) for i in layers}):
        yield captured


@contextlib.contextmanager
def steer(model: nn.Module, layer: int, vector: torch.Tensor, positions: Sequence[int] | None = None) -> Iterator[None]:
    """Add `vector` to the residual stream after `layer`, at every position (or only `positions`)."""

    def hook(module, args, output):
        residual = _residual(output)
        v = vector.to(device=residual.device, dtype=residual.dtype)
        if positions is None:
            return _replace_residual(output, residual + v)
        shifted = residual.clone()
        shifted[:, list(positions)] += v
        return _replace_residual(output, shifted)

    with _layer_hooks(model, {layer: hook}):
        yield


@contextlib.contextmanager
def ablate(model: nn.Module, layer: int, direction: torch.Tensor) -> Iterator[None]:
    """Project `direction` out of the residual stream after `layer`, at every position."""
    unit = direction / direction.norm()

    def hook(module, args, output):
        residual = _residual(output)
        u = unit.to(device=residual.device, dtype=residual.dtype)
        return _replace_residual(output, residual - (residual @ u).unsqueeze(-1) * u)

    with _layer_hooks(model, {layer: hook}):
        yield


class _Stopped(Exception):
    """Raised by `stop_after`'s hook to end a forward pass early."""


@contextlib.contextmanager
def stop_after(model: nn.Module, layer: int) -> Iterator[None]:
    """End every forward pass inside the block right after decoder `layer` (later layers and the LM head
    are not computed: activation reads need neither). Hooks registered earlier on that layer still run."""

    def hook(module, args, output):
        raise _Stopped

    with _layer_hooks(model, {layer: hook}):
        try:
            yield
        except _Stopped:
            pass
