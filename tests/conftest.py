import os

import pytest

# Fewer threads than cores keeps the suite from fighting itself on small machines.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_lm():
    from spillover.models import load

    return load("tiny")


@pytest.fixture(scope="session")
def rm_world():
    from spillover.world import load_world

    return load_world("rm-biases")
