"""``jwarp.outputs``: no output is an input or another output; unique animation names."""

import os
from pathlib import Path

import pytest

from jwarp.errors import AnimationError
from jwarp.outputs import clash, plan, same_file, unique_names, where


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The current folder, holding ``photo.gif`` and a symbolic and a hard link to it."""
    monkeypatch.chdir(tmp_path)
    Path("photo.gif").write_bytes(b"GIF89a")
    os.symlink("photo.gif", "soft.gif")
    os.link("photo.gif", "hard.gif")
    return tmp_path


def test_same_file_sees_through_paths_and_links(folder):
    assert same_file("photo.gif", "./sub/../photo.gif")
    assert same_file("photo.gif", folder / "photo.gif")
    assert same_file("soft.gif", "photo.gif") and same_file("hard.gif", "photo.gif")
    assert same_file("new.gif", "./new.gif")  # neither exists yet
    assert not same_file("photo.gif", "new.gif")


@pytest.mark.parametrize("out", ["photo.gif", "d/../photo.gif", "soft.gif", "hard.gif"])
def test_an_output_that_is_an_input_is_named_with_it(folder, out):
    Path("d").mkdir()
    line = clash([("--out", Path(out))], [("--input", Path("photo.gif"))])
    assert line.startswith(f"--out {out}: is the input --input photo.gif; it would be replaced")


def test_two_outputs_that_are_one_file_are_named_together(folder):
    Path("d").mkdir()
    line = clash([("--out", Path("x.gif")), ("--save-field", Path("d/../x.gif"))])
    assert line.startswith("--save-field d/../x.gif: is also the output of --out x.gif")
    line = clash([("--sheet", Path("hard.gif")), ("--json", Path("soft.gif"))])
    assert line.startswith("--json soft.gif: is also the output of --sheet hard.gif")
    line = clash([("--out", Path("x.gif")), ("--save-field", Path("x.gif/x.npy"))])
    assert line.startswith("--save-field x.gif/x.npy: lies in x.gif, the output of --out")
    line = clash([("--out", Path("x.gif"))], folders=[("--frames-dir", Path("x.gif"))])
    assert line.startswith("--frames-dir x.gif: is also the output of --out x.gif")
    assert clash([("--out", Path("a.gif")), ("--sheet", Path("a_sheet.png"))]) is None


def test_a_folder_replaced_whole_may_not_hold_an_input(folder):
    Path("frames").mkdir()
    Path("frames/frame_0000.png").write_bytes(b"")
    inputs = [("--input", Path("frames/frame_0000.png"))]
    line = clash([], inputs, [("--frames-dir", Path("frames"))])
    assert line.startswith("--frames-dir frames: holds the input --input frames/frame_0000.png")
    assert clash([], inputs, [("--frames-dir", Path("frames/sub"))]) is None


@pytest.mark.parametrize(
    ("names", "unique"),
    [
        (["a", "a_2", "a"], ["a", "a_2", "a_3"]),  # a taken name is never given again
        (["a", "a", "a_2"], ["a", "a_3", "a_2"]),  # nor one that a later input will take
        (["a", "a", "a"], ["a", "a_2", "a_3"]),
        (["A", "a"], ["A", "a_2"]),  # one file on a case-insensitive file system
        (["b", "c"], ["b", "c"]),
    ],
)
def test_unique_names_are_unique_by_construction(names, unique):
    assert unique_names(names) == unique


def test_inputs_a_a_2_and_sub_a_give_three_outputs(folder):
    """Issue 32 #4: a.png, a_2.png and sub/a.png wrote a_2.gif twice."""
    inputs = [Path("a.png"), Path("a_2.png"), Path("sub/a.png")]
    laid = plan([p.stem for p in inputs], where("out/", None), "forward", sheet=True,
                save_field="fields")
    assert [p.name for p in laid.animations] == ["a.gif", "a_2.gif", "a_3.gif"]
    assert [p.name for p in laid.sheets] == ["a_sheet.png", "a_2_sheet.png", "a_3_sheet.png"]
    assert [p.name for p in laid.fields] == ["a.npy", "a_2.npy", "a_3.npy"]


def test_plan_refuses_an_output_folder_holding_its_inputs(folder):
    """Issue 32 #2: --input 'd/*.gif' --out d/ replaced every input."""
    Path("d").mkdir()
    for name in ("p.gif", "q.gif"):
        Path("d", name).write_bytes(b"GIF89a")
    inputs = [("--input", Path("d/p.gif")), ("--input", Path("d/q.gif"))]
    with pytest.raises(AnimationError, match=r"^--out d/p.gif: is the input --input d/p.gif"):
        plan(["p", "q"], where("d/", None), "forward", inputs=inputs)
    laid = plan(["p", "q"], where("d/", None), "boomerang", inputs=inputs)  # other names
    assert [p.name for p in laid.animations] == ["p_boomerang.gif", "q_boomerang.gif"]
