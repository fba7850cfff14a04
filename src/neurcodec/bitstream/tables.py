"""The shipped integer probability tables the entropy coder indexes.

Table t (0..255) = shape t // 64 (gaussian, logistic, laplace, t4) at standard deviation
sigma_k = geomspace(0.04, 48, 64)[t % 64] in symbol units, discretised over symbols
[-L, L] with L = 63 plus two escape bins (index 0: s < -L, index 2L+2: s > L).
Each row holds 129 integer frequencies >= 1 summing to exactly 2**24 (constriction's
default ANS precision). Regenerate with `python -m neurcodec.bitstream.make_tables`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from neurcodec.errors import WeightsError

PRECISION = 24
HALF_RANGE = 63  # L: symbols in [-L, L] are coded directly, others escape
ALPHABET = 2 * HALF_RANGE + 3  # 127 direct symbols + 2 escape bins
SHAPES = ("gaussian", "logistic", "laplace", "t4")
NUM_SCALES = 64
NUM_TABLES = len(SHAPES) * NUM_SCALES
SIGMA_MIN, SIGMA_MAX = 0.04, 48.0
TABLES_PATH = Path(__file__).with_name("pmf_tables.npz")
# SHA-256 of the little-endian uint32 table contents (not of the .npz container).
TABLES_SHA256 = "a9d682412cb1af7a76f0022143b81747a974e3d5fca9e957d5f63587f6258688"


def tables_digest(freqs: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(freqs, dtype="<u4").tobytes()).hexdigest()


def table_sigmas() -> np.ndarray:
    """The standard deviation (symbol units) each scale index stands for; encoder-side only."""
    return np.geomspace(SIGMA_MIN, SIGMA_MAX, NUM_SCALES)


@lru_cache(maxsize=1)
def load_tables() -> np.ndarray:
    """(NUM_TABLES, ALPHABET) uint32 frequencies, verified against the pinned hash."""
    try:
        with np.load(TABLES_PATH) as archive:
            freqs = np.asarray(archive["freqs"], dtype=np.uint32)
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(f"entropy tables missing or unreadable at {TABLES_PATH}: {exc}") from exc
    if freqs.shape != (NUM_TABLES, ALPHABET) or tables_digest(freqs) != TABLES_SHA256:
        raise WeightsError(f"entropy tables at {TABLES_PATH} do not match the pinned hash")
    freqs.setflags(write=False)
    return freqs
