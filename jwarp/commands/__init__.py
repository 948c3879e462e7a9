"""The command-line tools: ``jwarp-train``, ``jwarp-animate`` and ``jwarp-evaluate``.

Each module builds its parser from light modules only (``jwarp.cli``, ``jwarp.choices``,
``jwarp.presets``, ...) and imports JAX and the numerical modules after parsing, so ``--help``,
``--version`` and a mistyped flag answer at once. ``train.py``, ``animate.py`` and
``python -m jwarp.evaluate`` are thin wrappers over the same ``main`` functions.
"""
