"""jwarp.cache: where commands keep compiled programs, switching it off, and two at once."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jwarp import cache

# A command in miniature: run_cli (which enables the cache) around a diffrax solve, whose
# argument checks would otherwise make its program uncacheable. --debug shows JAX's log.
CHILD = """
import sys
from jwarp.cli import run_cli

def main(argv):
    import jax.numpy as jnp
    from jwarp.flow import SolverConfig, integrate_svf
    v = jnp.full((1, 4, 4, 2), 0.25)
    out = integrate_svf(v, (0.5, 1.0), config=SolverConfig(solver="heun", step_size=0.5))
    print(f"{float(out.disp.sum()):.6f}")

sys.exit(run_cli("child.py", main))
"""
MISS = "PERSISTENT COMPILATION CACHE MISS"
CACHE_ERROR = "persistent compilation cache entry"  # JAX's read and write warnings


def _env(child_env, **more):
    env = {k: v for k, v in child_env.items() if not k.startswith(("JAX_", "EQX_"))}
    return {**env, "JAX_PLATFORMS": "cpu", "JAX_EXPLAIN_CACHE_MISSES": "1", **more}


def _start(env, *args):
    return subprocess.Popen([sys.executable, "-c", CHILD, "--debug", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(child):
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-2000:]
    assert CACHE_ERROR not in err, err[-2000:]
    return out.strip(), err


def test_the_folder_is_per_user_and_cpu_and_can_be_moved_or_switched_off(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    if sys.platform.startswith("linux"):
        assert cache.default_dir(env) == tmp_path / "xdg" / "jwarp" / "compile" / cache.cpu_tag()
    assert cache.cpu_tag() == cache.cpu_tag()
    assert cache.cache_dir([], {**env, cache.ENV: str(tmp_path / "mine")}) == tmp_path / "mine"
    assert cache.cache_dir([], {cache.ENV: "~/c"}) == Path.home() / "c"
    for off in ("off", "0", "OFF", "no"):
        assert cache.cache_dir([], {cache.ENV: off}) is None
    for flag in ("--no-cache", "--no-ca"):
        assert cache.cache_dir(["--debug", flag], env) is None
    assert cache.cache_dir(["--no-cachex"], env) is not None  # not the flag
    assert cache.wants_cache(["--n"], env)  # ambiguous abbreviations are argparse's to refuse


def test_a_second_run_compiles_nothing_and_two_first_runs_share_the_folder(tmp_path, child_env):
    folder = tmp_path / "cache"
    env = _env(child_env, **{cache.ENV: str(folder)})
    first = [_finish(c) for c in [_start(env), _start(env)]]  # at once, on an empty cache
    assert first[0][0] == first[1][0]
    assert MISS in first[0][1] + first[1][1]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # the cache is code: owner only
    entries = sorted(p.name for p in folder.glob("*-cache"))
    assert any(name.startswith("jit_diffeqsolve") for name in entries), entries

    out, err = _finish(_start(env))
    assert out == first[0][0]
    assert MISS not in err, [line for line in err.splitlines() if MISS in line]
    assert sorted(p.name for p in folder.glob("*-cache")) == entries


def test_switched_off_or_unwritable_the_command_runs_uncached(tmp_path, child_env):
    blocker = tmp_path / "file"
    blocker.write_text("")
    runs = {
        "flag": (_env(child_env, **{cache.ENV: str(tmp_path / "a")}), ["--no-cache"]),
        "unwritable": (_env(child_env, **{cache.ENV: str(blocker / "sub")}), []),
    }
    children = {name: _start(env, *args) for name, (env, args) in runs.items()}
    outs = {name: _finish(child)[0] for name, child in children.items()}
    assert len(set(outs.values())) == 1 and float(outs["flag"]) > 0
    assert not (tmp_path / "a").exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX environment handling")
def test_the_users_own_jax_cache_is_kept(tmp_path):
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax"), cache.ENV: str(tmp_path / "j")}
    assert cache.enable([], env) == tmp_path / "jax"
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "jax")
    assert env["EQX_ON_ERROR"] == "nan"
    assert not (tmp_path / "j").exists()
