"""Hash primitives shared by the stages and their compiled loops: MurmurHash3's 64-bit finalizer and the
seeds that combine values (tokens into shingles, band values into band keys).

A leaf module (numpy only): `stages/near_dedup.py`, its numba loops in `stages/near_dedup_kernels.py`
and `stages/decontaminate.py` all import these from here, so none imports another for a constant and no
import circle forms. Changing any value changes every near_dedup signature and decontamination index.
Reference: Appleby, MurmurHash3 (`fmix64`).
"""

from __future__ import annotations

import numpy as np

_U64 = np.uint64
#: MurmurHash3's fmix64 multipliers
FMIX_M1, FMIX_M2 = _U64(0xFF51AFD7ED558CCD), _U64(0xC4CEB9FE1A85EC53)
#: seeds that combine token hashes into shingle hashes, and band values into band keys
K_SHINGLE, K_BAND = _U64(0xD6E8FEB86659FD93), _U64(0xA0761D6478BD642F)


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: a bijective avalanche on uint64 arrays (wrapping arithmetic)."""
    h = h ^ (h >> _U64(33))
    h = h * FMIX_M1
    h = h ^ (h >> _U64(33))
    h = h * FMIX_M2
    return h ^ (h >> _U64(33))
