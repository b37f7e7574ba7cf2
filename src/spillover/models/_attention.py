"""Which attention kernels our own forward passes may use.

On Hopper GPUs PyTorch ranks cuDNN's attention first, and cuDNN builds an execution plan for
every new tensor shape, at hundreds of milliseconds each (pytorch/pytorch#155958). Our loops make
new shapes all the time: a decoding step grows the cache by one token and drops finished rows,
and SFT batches differ in length. On an H200 that made decoding 161 ms a step against 57 ms for
transformers' `generate` on shapes whose plans were already built (benchmarks/step_profile.py).
So decoding, likelihood scoring and training run with cuDNN attention left out; flash,
memory-efficient and math attention remain. On CPU this changes nothing (cuDNN is CUDA-only).
"""

from __future__ import annotations

# Names of torch.nn.attention.SDPBackend members, in no order: PyTorch keeps its own priority.
ATTENTION_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")


def attention_kernels():
    """Context manager: scaled-dot-product attention restricted to ATTENTION_BACKENDS."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, name) for name in ATTENTION_BACKENDS])
