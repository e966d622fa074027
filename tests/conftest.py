"""Shared fixtures. PyTorch is the oracle of every numeric test.

torch and torchvision are imported here, before anything can import TensorFlow: with TensorFlow
already loaded, importing torchvision (which loads triton through torch._dynamo) segfaults in
this environment (see DESIGN.md, "Process hygiene").
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision  # noqa: F401  (import order matters, see above)

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))  # `import helpers`, `from ops.cases import ...`


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(autouse=True, scope="module")
def _release_keras_state():
    """Hundreds of transpiles run in one process: drop Keras' global state (and the models it
    keeps reachable) after each test module, so memory stays flat on a 24 GiB CI machine."""
    yield
    if "keras" in sys.modules:
        import gc

        sys.modules["keras"].backend.clear_session()
        gc.collect()
