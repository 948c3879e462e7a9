"""jwarp as a user gets it: a wheel of this checkout, installed (not editable) into a fresh
environment, used from another folder through the commands on the PATH.

A module fixture copies the package's sources to a temporary folder (so that no build output
of the checkout can slip in), builds the wheel offline (``--no-build-isolation --no-index``:
setuptools >= 70.1 from the ``test`` extra), creates a virtual environment without pip and
installs the wheel into it with ``--no-deps``. The dependencies come from the test
environment's site-packages through a ``.pth`` line, which adds that folder to ``sys.path``
without running its own ``.pth`` files: the checkout's editable install stays invisible, so
every ``jwarp`` imported below is the installed one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "jwarp", "configs")
SCRIPTS = ("jwarp-train", "jwarp-animate", "jwarp-evaluate")
HEAVY = ("jax", "jaxlib", "flax", "optax", "diffrax", "orbax", "numpy")


def _can_build_offline() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    if (major, minor) >= (70, 1):
        return True
    try:  # older setuptools builds wheels through the `wheel` package
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


def _run(command, cwd, env, timeout=300):
    proc = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


class Installed:
    def __init__(self, wheel: Path, venv: Path, home: Path, env: dict[str, str]):
        self.wheel, self.venv, self.home, self.env = wheel, venv, home, env
        self.python = venv / "bin" / "python"

    def run(self, *command, timeout=300):
        """Runs ``command`` in the user's folder with the environment's bin/ first on PATH."""
        return _run([str(c) for c in command], self.home, self.env, timeout)


PIP = (sys.executable, "-m", "pip")


def _copy_sources(base: Path) -> Path:
    """The package's sources, copied to ``base/source``."""
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, source / name)
    return source


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JWARP_DEBUG")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _venv(venv: Path, env: dict[str, str]) -> Path:
    """A fresh virtual environment without pip whose dependencies are the test environment's
    packages (after what is installed in it); its python."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv], venv.parent, env)
    python = venv / "bin" / "python"
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        venv.parent,
        env,
    ).stdout.strip()
    (Path(purelib) / "_jwarp_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    if not _can_build_offline():
        pytest.skip("needs setuptools >= 70.1 (pip install -e '.[test]') to build a wheel offline")
    base = tmp_path_factory.mktemp("install")
    source = _copy_sources(base)
    dist = base / "dist"
    env = _clean_env()
    _run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist,
         source],
        base,
        env,
    )
    (wheel,) = dist.glob("jwarp-*.whl")

    venv = base / "venv"
    python = _venv(venv, env)
    _run([*PIP, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], base, env)

    home = base / "home"  # the user's folder: not the checkout, no runs/ in it
    home.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["JAX_PLATFORMS"] = "cpu"
    return Installed(wheel, venv, home, env)


def test_the_wheel_holds_the_presets_models_commands_and_licence(installed):
    with zipfile.ZipFile(installed.wheel) as z:
        names = set(z.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = z.read(entry_points).decode()
    presets = {p.name for p in (ROOT / "configs").glob("*.toml")}  # installed in the package
    assert {"smoke.toml", "faces_l2.toml"} <= presets
    assert {f"jwarp/configs/{p}" for p in presets} <= names
    for model in ("mnist", "smiles"):
        for part in ("config.toml", "params.msgpack", "model.json"):
            assert f"jwarp/pretrained/{model}/{part}" in names
    assert {"jwarp/commands/train.py", "jwarp/data/__init__.py", "jwarp/choices.py"} <= names
    # The face detector's weights and their licence notice travel with the package.
    assert {"jwarp/faces/yunet/yunet.onnx", "jwarp/faces/yunet/LICENSE"} <= names
    assert any(n.endswith("LICENSE") and ".dist-info/" in n for n in names)
    assert not any(n.startswith(("tests/", "configs/", "train.py", "animate.py")) for n in names)
    for script in SCRIPTS:
        assert script in scripts
        assert (installed.venv / "bin" / script).is_file()


def test_the_installed_package_is_used_and_finds_its_presets(installed):
    code = (
        "import jwarp, jwarp.presets\n"
        "from jwarp.config import load_config\n"
        "print(jwarp.__file__); print(jwarp.__version__)\n"
        "print(load_config('faces_l2').data.name); print(jwarp.presets.PRESETS_DIR)\n"
    )
    out = installed.run(installed.python, "-c", code).stdout.splitlines()
    assert Path(out[0]).is_relative_to(installed.venv), out
    assert not Path(out[0]).is_relative_to(ROOT)
    assert out[1] == "0.2.0"
    assert out[2] == "faces"
    assert Path(out[3]).is_relative_to(installed.venv)


def test_list_configs_names_each_installed_preset_with_its_purpose(installed):
    out = installed.run("jwarp-train", "--list-configs").stdout
    assert "smoke" in out and "Smoke test:" in out
    assert str(installed.venv) in out.splitlines()[0]  # the installed presets, not the checkout's


def test_an_editable_install_reads_the_checkouts_configs_folder(tmp_path):
    """``pip install -e .`` (CI, make): the presets are the checkout's ``configs/``, live, one
    copy (an edit there is what ``--config`` reads; nothing is copied into the package)."""
    if not _can_build_offline():
        pytest.skip("needs setuptools >= 70.1 (pip install -e '.[test]') to build offline")
    source, env = _copy_sources(tmp_path), _clean_env()
    python = _venv(tmp_path / "venv", env)
    _run([*PIP, "--python", python, "install", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-e", source], tmp_path, env)
    smoke = source / "configs" / "smoke.toml"
    smoke.write_text(smoke.read_text().replace("steps = 2", "steps = 7"))
    code = (
        "import jwarp.presets as p; from jwarp.config import load_config; "
        "print(p.PRESETS_DIR); print(load_config('smoke').train.steps)"
    )
    out = _run([python, "-c", code], tmp_path / "venv", env).stdout.split()
    assert out == [str(source / "configs"), "7"]
    assert not (source / "jwarp" / "configs").exists()


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_the_defaults_without_importing_jax(installed, script):
    module = "jwarp.commands." + script.removeprefix("jwarp-")
    start = time.perf_counter()
    proc = installed.run(installed.python, "-X", "importtime", "-m", module, "--help")
    seconds = time.perf_counter() - start
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
    assert not imported & set(HEAVY), imported & set(HEAVY)
    assert "default" in proc.stdout
    assert seconds < 5, seconds  # about 0.1 s; a loaded CI machine gets room
    assert installed.run(script, "--help").stdout == proc.stdout  # the command on the PATH
    assert proc.stdout.startswith(f"usage: {script}")


def test_train_help_shows_every_flag_with_its_default(installed):
    text = " ".join(installed.run("jwarp-train", "--help").stdout.split())
    for flag in ("--config", "--mode", "--data", "--steps", "--set", "--workdir", "--resume",
                 "--print-config", "--distributed", "--version"):
        assert flag in text
    assert text.count("(default:") >= 15, text
    assert "smoke" in text and "faces_l2" in text  # the shipped presets are listed
    assert installed.run("jwarp-train", "--version").stdout.strip().endswith("0.2.0")


def test_print_config_prints_the_resolved_toml_and_trains_nothing(installed):
    out = installed.run(
        "jwarp-train", "--config", "smoke", "--steps", "3", "--print-config"
    ).stdout
    assert "[train]" in out and "steps = 3" in out
    assert not (installed.home / "runs").exists()


def test_train_writes_a_run_from_any_folder(installed):
    installed.run("jwarp-train", "--config", "smoke", "--steps", "2", "--workdir", "W",
                  "--no-progress")
    run = installed.home / "W"
    assert (run / "config.toml").is_file()
    assert "steps = 2" in (run / "config.toml").read_text()
    steps = [p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
    assert "2" in steps, steps


def test_animate_a_shipped_model_from_any_folder(installed):
    image = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(image)
    draw.arc((8, 3, 20, 14), 200, 90, fill=255, width=2)  # a hand-drawn 3: two bowls
    draw.arc((8, 13, 20, 25), 270, 160, fill=255, width=2)
    image.save(installed.home / "three.png")
    installed.run("jwarp-animate", "--model", "mnist", "--input", "three.png", "--out", "a.gif",
                  "--t-steps", "4")
    with Image.open(installed.home / "a.gif") as gif:
        assert gif.format == "GIF"
        assert gif.n_frames >= 4


def test_evaluate_refuses_bad_input_in_one_line(installed):
    proc = subprocess.run(
        ["jwarp-evaluate", "--workdir", "nowhere"], cwd=installed.home, env=installed.env,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["jwarp-evaluate: error: --workdir nowhere: no such run "
                                        "folder"]


def test_the_installed_package_finds_faces_with_its_own_weights(installed):
    """The detector loads the weights shipped inside the installed package (no download, no
    file of the checkout) and finds the two faces of a real photo."""
    from conftest import SHARED_DATA

    photo = SHARED_DATA / "photos" / "two_people.jpg"
    if not photo.is_file():
        pytest.skip(f"real photo {photo} not found (set JWARP_SHARED_DATA)")
    script = (
        "import sys, numpy as np, PIL.Image as I, jwarp.faces.detect as d; "
        "x = np.asarray(I.open(sys.argv[1]).convert('RGB'), np.float32) / 255; "
        "print(len(d.detect_faces(x)), d.__file__)"
    )
    count, where = installed.run(installed.python, "-c", script, photo).stdout.split()
    assert count == "2" and Path(where).is_relative_to(installed.venv), where
