"""The README's code runs as written: its Python blocks execute, its commands parse."""

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _commands() -> list[list[str]]:
    """Every command line of the README's bash blocks (comments dropped, continuations
    joined)."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line))
    return out


def test_every_readme_command_of_jwarp_parses():
    """Each ``python train.py``, ``python animate.py`` and ``python -m jwarp.evaluate`` line
    of the README is accepted by that command's parser (no stale flag or value)."""
    from jwarp.commands import animate, evaluate, train

    parsers = {"train.py": train.build_parser, "animate.py": animate.build_parser,
               "jwarp.evaluate": evaluate.build_parser}
    seen = set()
    for argv in _commands():
        if argv[:1] != ["python"]:
            continue
        name, args = (argv[2], argv[3:]) if argv[1] == "-m" else (argv[1], argv[2:])
        if name in parsers:
            parsers[name]().parse_args(args)  # SystemExit(2) on a bad flag
            seen.add(name)
    assert seen == set(parsers)


def test_the_python_api_example_runs_as_written(tmp_path):
    """The README's Python blocks, run in a fresh process in a folder holding a photo of
    people (``photo.jpg``: the first frame of the README's own picture, an MIT-licensed photo
    of two men), as a user would."""
    from PIL import Image

    with Image.open(ROOT / "docs" / "real" / "photo.gif") as gif:
        gif.convert("RGB").save(tmp_path / "photo.jpg", quality=95)
    blocks = _blocks("python")
    assert blocks, "the README has a Python example"
    for block in blocks:
        done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True,
                              text=True, env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
                                              "PATH": "/usr/bin:/bin",
                                              "HOME": str(tmp_path)}, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]


def test_the_tensorboard_viewer_is_an_extra_that_the_docs_name():
    """``tensorboard --logdir runs`` needs the viewer, which jwarp itself does not (it writes
    the event files): the ``tensorboard`` extra installs it, and the docs say how, both from
    the package index and from a checkout."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["tensorboard"]
    assert [r for r in extra if r.startswith("tensorboard")], extra
    assert 'pip install ".[tensorboard]"' in README and "tensorboard --logdir runs" in README
    usage = (ROOT / "docs" / "usage.md").read_text()
    assert 'pip install "jwarp[tensorboard]"' in usage
    assert 'pip install -e ".[tensorboard]"' in usage
