"""Where a command's outputs go, checked before the work that produces them.

Every output can be written (``jwarp.cli.output_problem``), none is a file the command reads
and none is another output (``clash``: the same path, a symbolic link to it, or a hard link),
and the animations of ``animate.py`` get names that are unique by construction
(``unique_names``). ``plan`` lays out ``animate.py``'s files: each animation, its contact sheet,
its end map and its folder of frames.

Light on purpose (no JAX, no numpy): ``jwarp-evaluate`` checks its outputs before loading
anything heavy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from jwarp.choices import OUTPUT_FORMATS
from jwarp.errors import AnimationError

Named = tuple[str, Path]  # (what names it: "--out", "--input", ...; the path)


def _real(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.realpath(path))


def _inode(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path, a symbolic link to it or a hard
    link of it (either may not exist yet)."""
    if _real(a) == _real(b):
        return True
    ia = _inode(a)
    return ia is not None and ia == _inode(b)


class _Files:
    """Named paths, found again by any path naming the same file (``same_file``)."""

    def __init__(self):
        self._by_real: dict[str, Named] = {}
        self._by_inode: dict[tuple[int, int], Named] = {}

    def add(self, named: Named) -> None:
        self._by_real.setdefault(_real(named[1]), named)
        inode = _inode(named[1])
        if inode is not None:
            self._by_inode.setdefault(inode, named)

    def find(self, path: Path) -> Named | None:
        found = self._by_real.get(_real(path))
        if found is None and (inode := _inode(path)) is not None:
            found = self._by_inode.get(inode)
        return found


def clash(
    outputs: Sequence[Named], inputs: Iterable[Named] = (), folders: Sequence[Named] = ()
) -> str | None:
    """The first output that is an input or another output, or that lies below another
    output's file, as one line naming both; None when there is none.

    Args:
      outputs: the files to be written.
      inputs: the files read (an output that is one of them would replace it).
      folders: folders written whole, replacing what they held: none may be an output file
        or hold an input.
    """
    read, written = _Files(), _Files()
    inputs = list(inputs)
    for named in inputs:
        read.add(named)
    for flag, path in outputs:
        source = read.find(path)
        if source is not None:
            return (f"{flag} {path}: is the input {source[0]} {source[1]}; it would be "
                    "replaced: write the output elsewhere")
        other = written.find(path)
        if other is not None:
            return (f"{flag} {path}: is also the output of {other[0]} {other[1]}; give each "
                    "output its own path")
        written.add((flag, path))
    files = {_real(path): (flag, path) for flag, path in outputs}
    for flag, folder in folders:
        other = files.get(_real(folder))
        if other is not None:
            return (f"{flag} {folder}: is also the output of {other[0]} {other[1]}; give each "
                    "output its own path")
    for flag, path in [*outputs, *folders]:
        for parent in Path(_real(path)).parents:  # a file written where a folder must be
            other = files.get(str(parent))
            if other is not None:
                return (f"{flag} {path}: lies in {other[1]}, the output of {other[0]}; give "
                        "each output its own path")
    if folders:
        above: dict[str, Named] = {}  # every folder holding an input -> that input
        for named in inputs:
            for parent in Path(_real(named[1])).parents:
                above.setdefault(str(parent), named)
        for flag, folder in folders:
            source = above.get(_real(folder))
            if source is not None:
                return (f"{flag} {folder}: holds the input {source[0]} {source[1]}; the "
                        "folder is replaced as a whole: give it a folder of its own")
    return None


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` made unique: a repeat gets the first free ``_2``, ``_3``, ... that is neither
    taken nor one of ``names`` itself (``a``, ``a_2``, ``a`` -> ``a``, ``a_2``, ``a_3``).
    Names differing only in case count as one (case-insensitive file systems)."""
    reserved = {n.casefold() for n in names}
    taken: set[str] = set()
    out = []
    for name in names:
        chosen = name
        if name.casefold() in taken:
            k = 2
            while f"{name}_{k}".casefold() in taken | reserved:
                k += 1
            chosen = f"{name}_{k}"
        taken.add(chosen.casefold())
        out.append(chosen)
    return out


class Where(NamedTuple):
    """Where ``--out`` says the animations go: one ``file``, or a ``folder``; and as what."""

    file: Path | None
    folder: Path | None
    fmt: str


def where(out: str | None, fmt: str | None) -> Where:
    """``--out`` and ``--format`` -> where and as what (a one-line ``AnimationError`` for an
    unknown extension: never a folder named ``x.mp4``)."""
    folder_fmt = fmt or "gif"
    if out is None:
        return Where(None, Path("animations"), folder_fmt)
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir() or not path.suffix:
        return Where(None, path, folder_fmt)
    suffix = path.suffix.lower()
    if suffix.lstrip(".") not in OUTPUT_FORMATS:
        choices = ", ".join(f".{f}" for f in OUTPUT_FORMATS)
        raise AnimationError(
            f"--out {out}: unknown extension {path.suffix!r}; expected {choices} (one "
            "animation) or a folder (no extension)"
        )
    if fmt is not None and fmt != suffix[1:]:
        raise AnimationError(f"--format {fmt}: --out {out} is a {suffix} file; give one of them")
    return Where(path, None, suffix[1:])


def check_output(flag: str, path: Path, *, folder: bool = False, whole: bool = False) -> None:
    """``path`` (a file, or a ``folder``) can be written: one line saying why not
    (``jwarp.cli.output_problem``: a file in the way, a read-only file system, ...)."""
    from jwarp.cli import output_problem

    problem = output_problem(path, folder=folder, whole=whole)
    if problem is not None:
        raise AnimationError(f"{flag} {problem}")


class Plan(NamedTuple):
    """The files of ``animate.py``, one entry per animation (None: not asked for)."""

    animations: list[Path]
    sheets: list[Path | None]
    fields: list[Path | None]
    frames: list[Path | None]  # folders of PNG frames, each replaced as a whole


def plan(
    names: Sequence[str],
    out: Where,
    direction: str,
    *,
    sheet: bool = False,
    save_field: str | None = None,
    frames_dir: str | None = None,
    inputs: Sequence[Named] = (),
) -> Plan:
    """Lays out the outputs of the animations ``names`` and checks them before any is made.

    Args:
      names: each animation's name (an input's stem); repeats are made unique.
      out: ``where(--out, --format)``.
      direction: ``"forward"`` names ``NAME.gif``, others ``NAME_DIRECTION.gif``.
      sheet: a contact sheet ``NAME_sheet.png`` beside each animation.
      save_field: ``--save-field``: one ``.npy`` file, or a folder of ``NAME.npy``.
      frames_dir: ``--frames-dir``: the folder of one animation's frames, or of a folder per
        animation.
      inputs: the files read: no output may be one of them.

    Raises:
      AnimationError: one line: an output that is an input or another output, a frames
        folder that may not be replaced (``media.check_frames_folder``) or that would hold
        another output or an input, one file for several animations.
    """
    names = unique_names(list(names))
    if out.file is not None:
        if len(names) != 1:
            raise AnimationError(
                f"--out {out.file}: names one file, but there are {len(names)} animations; "
                f"give a folder (--out DIR --format {out.fmt})"
            )
        animations = [out.file]
    else:
        suffix = "" if direction == "forward" else f"_{direction}"
        animations = [out.folder / f"{name}{suffix}.{out.fmt}" for name in names]
    sheets = [p.with_name(f"{p.stem}_sheet.png") if sheet else None for p in animations]
    fields = _field_paths(names, save_field)
    frames = _frames_folders(frames_dir, animations)
    files = [("--out", p) for p in animations]
    files += [("--sheet", p) for p in sheets if p is not None]
    files += [("--save-field", p) for p in fields if p is not None]
    problem = clash(files, inputs, [("--frames-dir", f) for f in frames if f is not None])
    if problem is not None:
        raise AnimationError(problem)
    _check_frames_folders(frames, [p for _, p in files])
    return Plan(animations, sheets, fields, frames)


def _field_paths(names: list[str], save_field: str | None) -> list[Path | None]:
    """Where ``--save-field`` puts each animation's end map (None: not asked for)."""
    if save_field is None:
        return [None] * len(names)
    if save_field.lower().endswith(".npy"):
        if len(names) != 1:
            raise AnimationError(
                f"--save-field {save_field}: names one file, but there are {len(names)} "
                "animations; give a folder"
            )
        return [Path(save_field)]
    return [Path(save_field) / f"{name}.npy" for name in names]


def _frames_folders(frames_dir: str | None, paths: list[Path]) -> list[Path | None]:
    """Where ``--frames-dir`` puts each animation's PNG frames: the folder itself for one
    animation, a folder in it per animation (named after its file) for several."""
    if not frames_dir:
        return [None] * len(paths)
    folder = Path(frames_dir)
    return [folder] if len(paths) == 1 else [folder / path.stem for path in paths]


def _check_frames_folders(folders: list[Path | None], others: list[Path]) -> None:
    """Each frames folder may be replaced as a whole (``media.check_frames_folder``) and holds
    none of the other outputs (they would be replaced with it)."""
    from jwarp.media import check_frames_folder

    for folder in folders:
        if folder is None:
            continue
        try:
            check_frames_folder(folder)
        except ValueError as e:
            raise AnimationError(f"--frames-dir {e}") from None
        check_output("--frames-dir", folder, folder=True, whole=True)
        inside = Path(_real(folder))  # as ``clash`` resolves paths: links followed
        for other in others:
            if inside in Path(_real(other)).parents:
                raise AnimationError(
                    f"--frames-dir {folder}: would also hold {other}; the frames replace their "
                    "folder as a whole: give them a folder of their own"
                )


__all__ = ["Plan", "Where", "check_output", "clash", "plan", "same_file", "unique_names",
           "where"]
