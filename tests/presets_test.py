"""The presets: one copy, in the checkout's top-level ``configs/`` (installed as
``jwarp/configs/``: tests/install_test.py), each opening with its purpose in one line, which
``train.py --list-configs`` and ``--help`` show."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from jwarp import presets
from jwarp.config import load_config

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"jax", "jaxlib", "flax", "optax", "diffrax", "orbax", "numpy"}


def test_the_presets_are_the_checkouts_configs_folder_and_nowhere_else():
    assert presets.PRESETS_DIR == ROOT / "configs"
    assert not (ROOT / "jwarp" / "configs").exists()
    names = {p.name for p in (ROOT / "configs").glob("*.toml")}
    assert {"smoke.toml", "faces_l2.toml"} <= names
    # No second copy of a preset anywhere in the repository.
    tracked = subprocess.run(
        ["git", "ls-files", "*.toml"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    if tracked:  # a git checkout
        copies = [t for t in tracked if Path(t).name in names and not t.startswith("configs/")]
        assert copies == []
    # The wheel installs the same folder as the package's jwarp/configs/.
    with open(ROOT / "pyproject.toml", "rb") as f:
        setuptools = tomllib.load(f)["tool"]["setuptools"]
    assert setuptools["package-dir"]["jwarp.configs"] == "configs"
    assert "jwarp.configs" in setuptools["packages"]
    assert setuptools["package-data"]["jwarp.configs"] == ["*.toml"]


@pytest.mark.parametrize("name", presets.list_presets())
def test_each_preset_opens_with_its_purpose_in_one_line(name):
    first = (presets.PRESETS_DIR / f"{name}.toml").read_text().splitlines()[0]
    assert first.startswith("# ") and len(first) <= 100, first
    assert first.endswith("."), f"{name}: the first line is a whole sentence: {first!r}"
    assert presets.describe(name) == first[2:]


def test_a_preset_copied_elsewhere_and_edited_is_read_from_its_path(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text((presets.PRESETS_DIR / "smoke.toml").read_text() + "\n[optim]\nlr = 0.5\n")
    assert load_config(mine).optim.lr == 0.5
    assert load_config("smoke").optim.lr != 0.5


def _train(*argv, cwd):
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "train.py"), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


def test_list_configs_names_each_preset_with_its_purpose_and_exits(tmp_path):
    proc = _train("--list-configs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
    assert not imported & HEAVY, imported & HEAVY
    lines = proc.stdout.splitlines()
    assert str(presets.PRESETS_DIR) in lines[0]
    listed = [line.split(None, 1) for line in lines[1:]]
    assert listed == [[name, presets.describe(name)] for name in presets.list_presets()]
    assert list(tmp_path.iterdir()) == []  # no run folder, nothing trained


def test_help_shows_the_same_list():
    from jwarp.commands.train import build_parser

    text = build_parser().format_help()
    assert presets.presets_listing() in text
