"""`make bench-scale`: cost growth on generated corpora of 1x, 2x, 4x and 8x a base size.

The base corpus is the demo corpus (code and text from this Python installation). Copy k of every
document has ~25% of its word tokens replaced by seeded random words, so copies are neither exact nor
near duplicates of each other (Jaccard of 5-gram shingles far below 0.7), while 5% of documents get a
planted near-duplicate (2% of tokens edited), so near-dedup has real work at every scale.

Each stage runs as its own `curate run --stages X --engine local` subprocess, so the wall time and the
peak RSS (VmHWM of the child at exit: the whole stage in one process) belong to that stage alone. Growth
exponents are the least-squares slope of log(time) against log(size): 1.0 is linear. A second table runs
the whole pipeline through Ray with 1 and with 2 CPUs and reports the speed-up.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

IN_MAKE_BENCH = False  # minutes, not seconds: run with `make bench-scale`
SCALES = (1, 2, 4, 8)
FILE_DOCS = 250  # documents per generated file (~3 MB of code)
WORD = re.compile(r"\w+")


def _mutate(text: str, rng: random.Random, rate: float) -> str:
    return WORD.sub(lambda m: f"w{rng.randrange(1 << 20):x}" if rng.random() < rate else m.group(0), text)


def base_documents(demo_dir: Path) -> tuple[list[str], list[str]]:
    import gzip

    import pyarrow.parquet as pq
    import zstandard

    code = [p.read_text(encoding="utf-8", errors="replace") for p in sorted((demo_dir / "code/python").rglob("*.py"))]
    code += pq.read_table(demo_dir / "code/headers.parquet", columns=["content"])["content"].to_pylist()
    text = [json.loads(line)["text"] for line in gzip.decompress((demo_dir / "text/topics.jsonl.gz").read_bytes()).splitlines()]
    docs = zstandard.ZstdDecompressor().decompressobj().decompress((demo_dir / "text/docs.jsonl.zst").read_bytes())
    text += [json.loads(line)["body"] for line in docs.splitlines() if line.strip()]
    return [c for c in code if c.strip()], [t for t in text if t.strip()]


def write_corpus(out: Path, scale: int, code: list[str], text: list[str], seed: int = 0) -> int:
    import zstandard

    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for kind, docs in (("code", code), ("text", text)):
        lines = []
        for k in range(scale):
            for i, doc in enumerate(docs):
                body = doc if k == 0 else _mutate(doc, rng, 0.25)
                lines.append(json.dumps({"id": f"{k}-{i}", "text": body, "lang": "Python" if kind == "code" else "en"}))
                if rng.random() < 0.05:
                    lines.append(json.dumps({"id": f"{k}-{i}-near", "text": _mutate(body, rng, 0.02),
                                             "lang": "Python" if kind == "code" else "en"}))
        for n, start in enumerate(range(0, len(lines), FILE_DOCS)):  # a jsonl file is one partition: several
            payload = ("\n".join(lines[start:start + FILE_DOCS]) + "\n").encode()  # files give Ray work to share
            total += len(payload)
            (out / f"{kind}-{n:04d}.jsonl.zst").write_bytes(zstandard.ZstdCompressor(level=3).compress(payload))
    return total


def scale_recipe(demo_recipe: dict, data: Path) -> dict:
    recipe = {k: v for k, v in demo_recipe.items() if k not in ("sources", "workdir")}
    recipe["name"] = "scale"
    recipe["sources"] = [
        {"name": "code", "kind": "code", "format": "jsonl", "paths": [str(data / "code-*.jsonl.zst")], "id_field": "id",
         "lang_field": "lang"},
        {"name": "text", "kind": "text", "format": "jsonl", "paths": [str(data / "text-*.jsonl.zst")], "id_field": "id",
         "lang_field": "lang"},
    ]
    pack = dict(recipe.get("pack") or {})
    for key in ("max_epochs", "source_weights"):  # the demo's names its own sources
        pack.pop(key, None)
    recipe["pack"] = {**pack, "max_epochs": {"text": 4}}
    return recipe


# The stage's own peak RSS (VmHWM at exit): ru_maxrss of a child starts at its parent's, this benchmark's.
_WITH_PEAK = ("import atexit, sys; from curate.memory import peak_rss_mb; from curate.cli import main; "
              "atexit.register(lambda: open(sys.argv[1], 'w').write(str(peak_rss_mb()))); sys.exit(main(sys.argv[2:]))")


def run_stage(recipe: Path, workdir: Path, stage: str, extra: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    peak = workdir.parent / f".peak-{stage}"
    proc = subprocess.run([sys.executable, "-c", _WITH_PEAK, str(peak), "-q", "run", str(recipe), "--workdir",
                           str(workdir), "--stages", stage, *extra], stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed")
    return time.perf_counter() - started, int(float(peak.read_text()) * 2**20)


def slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    from curate import pipeline

    demo = yaml.safe_load(Path("recipes/demo.yaml").read_text())
    code, text = base_documents(Path("data/demo"))
    stages = pipeline.implemented_stages()
    tmp = Path(tempfile.mkdtemp(prefix="curate-scale-"))
    rows: dict[str, list[tuple[int, float, int]]] = {s: [] for s in stages}
    sizes, pairs = [], []
    try:
        for scale in SCALES:
            nbytes = write_corpus(tmp / f"data{scale}", scale, code, text)
            sizes.append(nbytes)
            recipe = tmp / f"scale{scale}.yaml"
            recipe.write_text(yaml.safe_dump(scale_recipe(demo, tmp / f"data{scale}")))
            for stage in stages:
                seconds, rss = run_stage(recipe, tmp / f"w{scale}", stage, ["--engine", "local"])
                rows[stage].append((scale, seconds, rss))
            nd = json.loads((tmp / f"w{scale}" / "near_dedup" / "_manifest.json").read_text())["extra"]
            pairs.append((scale, nd["docs"], nd["candidate_pairs"], nd["edges"]))
            shutil.rmtree(tmp / f"w{scale}")
        print(f"base corpus: {sizes[0] / 1e6:.1f} MB uncompressed; scales {SCALES}")
        print(f"{'stage':<12} " + " ".join(f"{f'{s}x s':>8} {f'{s}x RSS':>9}" for s in SCALES) + f" {'exponent':>9}")
        for stage, r in rows.items():
            cells = " ".join(f"{sec:>8.1f} {rss / 2**20:>7.0f}MB" for _, sec, rss in r)
            print(f"{stage:<12} {cells} {slope(sizes, [sec for _, sec, _ in r]):>9.2f}")
        print("near_dedup: " + "; ".join(f"{k}x: {d} docs, {c} candidate pairs, {e} edges" for k, d, c, e in pairs)
              + f"; candidate-pair exponent {slope(sizes, [max(c, 1) for _, _, c, _ in pairs]):.2f}")
        recipe = tmp / f"scale{SCALES[-1] // 2}.yaml"
        times = {}
        for cpus in (1, 2):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "curate.cli", "-q", "run", str(recipe), "--workdir", str(tmp / f"ray{cpus}"),
                            "--num-cpus", str(cpus)], check=True, stdout=subprocess.DEVNULL)
            times[cpus] = time.perf_counter() - started
        print(f"whole pipeline through Ray on the {SCALES[-1] // 2}x corpus: 1 CPU {times[1]:.1f}s, 2 CPUs {times[2]:.1f}s, "
              f"speed-up {times[1] / times[2]:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
