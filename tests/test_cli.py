"""The command line: --help on every command, exit codes, and a real `curate run` through Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate.cli import build_parser, main
from tests.conftest import ROOT


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


def test_every_command_has_help(capsys):
    assert {"run", "validate", "sample", "explain", "assets"} <= set(commands())
    for cmd in commands():
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: curate " + cmd in capsys.readouterr().out


def test_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2


def test_unknown_stage_exit_2(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "r.yaml").write_text(f"name: r\nsources: [{{name: a, kind: text, format: jsonl, paths: ['{tmp_path}/d.jsonl']}}]\n")
    assert main(["run", str(tmp_path / "r.yaml"), "--stages", "ingest,dedupe"]) == 2
    assert "unknown stage 'dedupe'" in capsys.readouterr().err


def test_sample_is_deterministic_and_counts_duplicates(tmp_path):
    from curate.sample import build_sample, corpus_digest

    a = build_sample(tmp_path / "a", max_code_files=120)
    b = build_sample(tmp_path / "b", max_code_files=120)
    assert a == b and corpus_digest(tmp_path / "a") == corpus_digest(tmp_path / "b")
    assert a["documents"]["code/python"] == 120 and a["documents"]["text/topics"] > 50


@pytest.mark.slow
def test_curate_run_subprocess_through_ray(tmp_path):
    """The real command on a small demo corpus, with its own local Ray: exit 0, summary printed."""
    from curate.sample import build_sample

    build_sample(tmp_path / "data/demo", max_code_files=60)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "curate.cli", "run", str(ROOT / "recipes/demo.yaml"), "--workdir", str(tmp_path / "w"),
           "--stages", "ingest,exact-dedup"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "exact_dedup" in proc.stdout and "stdlib" in proc.stdout
    manifest = json.loads(Path(tmp_path / "w/exact_dedup/_manifest.json").read_text())
    assert manifest["engine"] == "ray"
    assert "Traceback" not in proc.stderr
