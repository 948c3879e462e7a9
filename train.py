"""Train a Warping Neural ODE: ``python train.py`` is ``jwarp-train`` (``jwarp.commands.train``).

    python train.py --mode l2  --data faces      # paired faces, L2 loss (preset faces_l2)
    python train.py --mode gan --data faces      # unpaired faces, WGAN-GP (preset faces_gan)
    python train.py --mode gan --data digits     # 3 -> 4 (preset digits_gan)
    python train.py --config paper_mnist --data-dir ~/mnist   # the authors' settings
    python train.py --config paper_faces --distributed --workdir gs://bucket/faces  # every host
    python train.py --config smoke --print-config             # the resolved config, no training

Any field can be set with ``--set section.key=value``; see ``configs/``
(``python train.py --list-configs``) and ``jwarp/config.py``. ``python train.py --help`` lists
every flag and its default.
"""

from __future__ import annotations

import sys

from jwarp.commands import train as _command


def main(argv: list[str] | None = None) -> int:
    """``jwarp-train`` under the name ``train.py`` (see ``jwarp.commands.train.main``)."""
    return _command.main(argv, prog="train.py")


if __name__ == "__main__":
    sys.exit(main())
