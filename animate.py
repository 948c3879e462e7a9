"""Animate images: ``python animate.py`` is ``jwarp-animate`` (``jwarp.commands.animate``).

    python animate.py                                   # test images of the latest run in runs/
    python animate.py --input me.png --t-steps 120 --out me.gif
    python animate.py --model smiles --input 'photos/*.jpg' --out smiles/   # shipped model
    python animate.py --input 'faces/*.png' --direction boomerang --sheet --grid
    python animate.py --input a.png --target b.png      # fit one pair, no training set needed

Outputs go to animations/ unless --out names a .gif file or a folder; ``--help`` lists every
flag and its default.
"""

from __future__ import annotations

import sys

from jwarp.commands import animate as _command


def main(argv: list[str] | None = None) -> int:
    """``jwarp-animate`` under the name ``animate.py`` (see ``jwarp.commands.animate.main``)."""
    return _command.main(argv, prog="animate.py")


if __name__ == "__main__":
    sys.exit(main())
