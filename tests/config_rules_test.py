"""The rules a config's values must follow (jwarp.config_rules): bounded integers, refused in
one line before any run folder is made; ``data.paired`` as training uses it; and the package's
imports, free of cycles."""

import ast
import dataclasses
import typing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jwarp import config_rules
from jwarp.choices import DATASETS, MODES, UNPAIRED_DATASETS
from jwarp.config import Config, ConfigError, _hints, load_config

ROOT = Path(__file__).resolve().parents[1]
HUGE = 99999999999999999999999999


def _int_keys(cls=Config, table=""):
    """Dotted keys of every integer field (and array of integers) of ``cls``."""
    for name, hint in _hints(cls).items():
        key = f"{table}.{name}" if table else name
        if dataclasses.is_dataclass(hint):
            yield from _int_keys(hint, key)
        elif hint is int or typing.get_args(hint) == (int, Ellipsis):
            yield key, hint


@pytest.mark.parametrize(("key", "hint"), list(_int_keys()))
def test_every_integer_key_has_an_upper_bound(key, hint):
    ok, _ = config_rules.RULES[key]
    assert not ok(2**32 if hint is int else (2**32,))
    assert _error({key: HUGE if hint is int else [HUGE]}).startswith(f"{key}: expected ")


def _error(overrides) -> str:
    with pytest.raises(ConfigError) as info:
        load_config("smoke", overrides)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_the_seed_is_what_jax_random_keeps():
    assert load_config("smoke", {"train.seed": 2**32 - 1}).train.seed == 2**32 - 1
    for seed in (2**32, HUGE):
        assert _error({"train.seed": seed}) == (
            f"train.seed: expected an integer in [0, 4294967295], got {seed}"
        )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.steps", 10**9 + 1),
        ("train.batch_size", 10**6),
        ("data.image_size", 10**5),
        ("loss.n_critic", 10**4),
        ("flow.max_steps", 2**31),
        ("flow.step_size", 1e-30),  # 10^30 solver steps
        ("model.unet.encoder", [8, 2**40]),
    ],
)
def test_extreme_values_are_refused_naming_the_key_and_the_range(key, value):
    message = _error({key: value})
    assert message.startswith(f"{key}: expected ") and " got " in message, message


@pytest.mark.parametrize("print_config", [True, False])
@pytest.mark.parametrize("flag", [["--set", f"train.seed={HUGE}"], ["--seed", str(HUGE)]])
def test_train_refuses_a_huge_seed_in_one_line_and_makes_no_run_folder(
    flag, print_config, tmp_path, monkeypatch, capsys
):
    from jwarp.commands import train as command

    monkeypatch.chdir(tmp_path)
    argv = ["--config", "smoke", *flag, "--workdir", "W", "--no-progress"]
    assert command.main(argv + (["--print-config"] if print_config else [])) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"jwarp-train: error: train.seed: expected an integer in [0, 4294967295], got {HUGE}"
    ]
    assert list(tmp_path.iterdir()) == []


# --- data.paired: what training uses ----------------------------------------------------------


def _folder(root: Path) -> Path:
    for side, value in (("source", 40), ("target", 200)):
        (root / side).mkdir(parents=True)
        for name in ("a", "b"):
            Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(root / side / f"{name}.png")
    return root


def _args(data, mode, tmp_path):
    args = ["--data", data, "--mode", mode, "--image-size", "16", "--batch-size", "2"]
    if data == "folder":
        args += ["--data-dir", str(_folder(tmp_path / "folder"))]
    elif data == "npy":
        np.save(tmp_path / "pairs.npy", np.zeros((2, 2, 16, 16, 1), np.float32))
        args += ["--data-dir", str(tmp_path / "pairs.npy")]
    elif data != "faces" and data != "digits":
        args += ["--data-dir", str(tmp_path / "unread")]  # config only: nothing is loaded
    if data == "faces":
        args += ["--set", "data.n_train=4", "--set", "data.n_test=2"]
    return args


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("data", DATASETS)
def test_paired_says_whether_training_pairs_each_source_with_its_target(data, mode, tmp_path):
    import argparse

    from jwarp import config_args

    parser = config_args.add_config_args(argparse.ArgumentParser())
    args = parser.parse_args(_args(data, mode, tmp_path))
    if mode == "l2" and data in UNPAIRED_DATASETS:
        with pytest.raises(ConfigError, match="loss.mode: 'l2' needs paired data"):
            config_args.config_from_args(args)
        return
    config, _ = config_args.config_from_args(args)
    # GAN training shuffles sources and targets separately, whatever the data; folder and npy
    # data keep their flag: it says how they load, and evaluation measures against the pairs.
    assert config.data.paired == (mode == "l2" or data in ("folder", "npy"))
    if data in ("faces", "digits", "folder", "npy"):  # small enough to load here
        from jwarp import parallel
        from jwarp.training import training_batches

        batches = training_batches(config, parallel.data_mesh())
        assert batches.paired == (mode == "l2")


def test_an_old_gan_run_folder_that_says_paired_reads_as_it_trained(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[data]\nname = "faces"\npaired = true\n[loss]\nmode = "gan"\n')
    old = load_config(path)
    assert old.data.paired is False
    # So it resumes beside a config resolved today (jwarp.training compares [data]).
    assert old.data == load_config(None, {"data.name": "faces", "loss.mode": "gan"}).data


@pytest.mark.parametrize("paired", [True, False])
def test_a_gan_run_on_folder_data_keeps_its_pairing(paired, tmp_path):
    """Forcing paired = false for every GAN run loaded paired folders unpaired: evaluation
    lost its pairs (and --compare-fit was refused)."""
    from jwarp.config import to_toml
    from jwarp.data import load_dataset

    folder = _folder(tmp_path / "folder")
    config = load_config(None, {"data.name": "folder", "data.data_dir": str(folder),
                                "data.paired": paired, "data.image_size": 16,
                                "loss.mode": "gan"})
    assert config.data.paired is paired
    (tmp_path / "config.toml").write_text(to_toml(config))
    run = load_config(tmp_path / "config.toml")  # as the run folder records it
    assert run.data.paired is paired
    x0, x1, loaded = load_dataset(run.data, "test")
    assert loaded is paired and len(x0) == len(x1) == 2


def test_faces_are_paired_in_l2_mode():
    with pytest.raises(ConfigError, match="data.paired: faces are always paired in loss.mode"):
        load_config(None, {"data.paired": False})


# --- imports --------------------------------------------------------------------------------


def _imports() -> dict[str, set[str]]:
    """Module -> the jwarp modules it imports anywhere (top level, ``TYPE_CHECKING`` blocks,
    functions)."""
    files = {}
    for path in (ROOT / "jwarp").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        tree = ast.parse(path.read_text())
        for node in tree.body:  # ``python -m`` entry points run after every import is done
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                tree.body.remove(node)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                found |= {base} | {f"{base}.{a.name}" for a in node.names}
        graph[name] = (found & set(files)) - {name}
    return graph


def _reaches(graph, start, goal) -> bool:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return False


def test_no_module_is_in_an_import_cycle():
    # config <-> execution, evaluate <-> commands.evaluate and data.folders <-> data.aligned
    # imported each other (at the top, under TYPE_CHECKING or inside functions).
    graph = _imports()
    assert "jwarp.execution" in graph["jwarp.config"]  # the parser sees the imports
    assert "jwarp.data.aligned" in graph["jwarp.data.folders"]  # ... inside functions too
    cycles = {module: [other for other in graph[module] if _reaches(graph, other, module)]
              for module in graph}
    assert {m: c for m, c in cycles.items() if c} == {}
