"""Regenerates the docs' tables of measured results from the JSON files (``make tables``).

    python docs/make_results.py            # rewrite every generated table in place
    python docs/make_results.py --check    # exit 1, naming the tables, if any is out of date

A generated table sits between ``<!-- generated:NAME -->`` and ``<!-- /generated -->`` in a
Markdown file; everything outside those markers is hand-written and left alone. Every number in
a generated table is read from one of these files, never typed in:

* ``docs/results/*.json``: ``python -m jwarp.evaluate --json`` (``make results``, ``make real``)
  and ``docs/mid_frame_fits.py``;
* ``benchmarks/results/cpu_pairs.json``: ``benchmarks/bench_pairs.py`` (``make bench-pairs``);
* ``benchmarks/results.json``: ``benchmarks/bench.py`` (``make bench``).

The script's own text is the tables' labels and the targets they are held to. Standard library
only (no JAX), so it runs anywhere in a second.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINUS = "\u2212"


# --- reading and formatting ----------------------------------------------------------------


def load(rel: str) -> dict:
    return json.loads((ROOT / rel).read_text())


def num(x: float, nd: int = 1) -> str:
    """``x`` to ``nd`` decimals, with a true minus sign."""
    s = f"{x:.{nd}f}"
    return MINUS + s[1:] if s.startswith("-") else s


def signed(x: float, nd: int = 1) -> str:
    """``+1.1`` / ``−0.9``."""
    s = num(x, nd)
    return s if s.startswith(MINUS) else "+" + s


def pct(x: float, nd: int = 1) -> str:
    """A percentage; an exact 0 is ``0 %``."""
    return "0 %" if x == 0 else f"{num(x, nd)} %"


def sig3(x: float) -> str:
    """About three significant figures, at most two decimals: 18.0, 4.43, 0.07."""
    nd = 2 if x < 10 else 1 if x < 100 else 0
    return num(x, nd)


def seconds(t: float) -> str:
    """A time in ms below a second, else in s, to three significant figures or so."""
    if t < 1.0:
        ms = t * 1000.0
        return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"
    return f"{t:.2f} s" if t < 10 else f"{t:.1f} s"


def table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def metric(result: dict, name: str, row: str = "model") -> float:
    return result["metrics"][name][row]


# --- real images: the shipped models (smiles_gan, mnist_gan) --------------------------------


def real_summary() -> str:
    """The README's one results table (also at the top of docs/results.md)."""
    smiles, mnist = load("docs/results/smiles_gan.json"), load("docs/results/mnist_gan.json")
    fei = load("docs/results/fei_l2.json")
    header = [
        "model, test images",
        "judged target class: warped",
        "unwarped inputs",
        "real targets",
        "images folded",
        "pixels with `J < 0.25` or `J > 4`",
        "smallest `det J` ≥ 0.1",
    ]
    rows = []
    for name, res, what, unit in (
        ("smiles", smiles, "neutral test faces (SMILEsmileD, FEI) → smiling", "faces"),
        ("fei", fei, "FEI test people → smiling (paired, L2)", "faces"),
        ("mnist", mnist, "MNIST 3s → 4", "digits"),
    ):
        rows.append([
            f"`--model {name}`: {res['n_images']} {what}",
            f"**{pct(metric(res, 'judged_target_pct'))}**",
            pct(metric(res, "judged_target_pct", "identity")),
            pct(metric(res, "judged_target_pct", "real_targets")),
            pct(metric(res, "images_folded_pct")),
            pct(metric(res, "extreme_jacobian_pct"), 2),
            f"{pct(metric(res, 'images_min_det_ge_0.1_pct'))} of {unit}",
        ])
    photos = people_totals(load("docs/results/photos.json"))
    rows.insert(1, [
        f"`--model smiles` in place: {photos['faces']} faces in {photos['photos']} held-out "
        "photos of five kinds → smiling",
        f"**{pct(photos['judged_after_pct'])}**", pct(photos["judged_before_pct"]),
        pct(metric(smiles, "judged_target_pct", "real_targets")),
        pct(photos["photos_folded_pct"]), pct(photos["extreme_pct"], 2),
        f"{pct(photos['photos_min_det_ge_0.1_pct'])} of photos",
    ])
    return table(header, rows)


def real_test_split() -> str:
    """docs/real_results.md: both presets in full, with their targets."""
    s, m = load("docs/results/smiles_gan.json"), load("docs/results/mnist_gan.json")
    ratio = metric(s, "judged_target_pct") / metric(s, "judged_target_pct", "identity")
    header = [
        "measure",
        f"`smiles_gan` ({s['n_images']} neutral test faces)",
        "target",
        f"`mnist_gan` ({m['n_images']} test 3s)",
        "target",
    ]
    rows = [
        ["iterations, time", f"{s['step']}, 0.93 s each: ~58 min", "≤ 60 min",
         f"{m['step']}, 0.57 s each: ~48 min", "≤ 60 min"],
        ["judged target class, warped", f"**{pct(metric(s, 'judged_target_pct'))}**", "≥ 60 %",
         f"**{pct(metric(m, 'judged_target_pct'))}**", "≥ 90 %"],
        ["… unwarped inputs / real targets",
         f"{pct(metric(s, 'judged_target_pct', 'identity'))} / "
         f"{pct(metric(s, 'judged_target_pct', 'real_targets'))}",
         f"model ≥ 4x unwarped: {num(ratio)}x",
         f"{pct(metric(m, 'judged_target_pct', 'identity'))} / "
         f"{pct(metric(m, 'judged_target_pct', 'real_targets'))}", ""],
        ["one stroke (ink > 0.5 in one piece)", "", "",
         f"**{pct(metric(m, 'single_stroke_pct'))}** (real 3s "
         f"{pct(metric(m, 'single_stroke_pct', 'identity'))}, real 4s "
         f"{pct(metric(m, 'single_stroke_pct', 'real_targets'))})",
         "≥ 90 %" + ("" if metric(m, "single_stroke_pct") >= 90 else ": **missed**")],
        ["images with a fold (`det J <= 0`)", pct(metric(s, "images_folded_pct"), 0), "0",
         pct(metric(m, "images_folded_pct"), 1), "≤ 5 %"],
        ["pixels with `J < 0.25` or `J > 4`", pct(metric(s, "extreme_jacobian_pct"), 2), "≤ 1 %",
         pct(metric(m, "extreme_jacobian_pct"), 2), "≤ 5 %"],
        ["smallest `det J` ≥ 0.1", f"{pct(metric(s, 'images_min_det_ge_0.1_pct'))} of faces",
         "≥ 95 %", f"{pct(metric(m, 'images_min_det_ge_0.1_pct'))} of digits", ""],
        ["smallest / median smallest `det J`",
         f"{num(metric(s, 'min_det'), 3)} / {num(metric(s, 'median_min_det'), 2)}", "",
         f"{num(metric(m, 'min_det'), 3)} / {num(metric(m, 'median_min_det'), 2)}", ""],
        ["bending energy of the end map (px⁻²)", num(metric(s, "bending_energy"), 3), "",
         num(metric(m, "bending_energy"), 2), ""],
    ]
    return table(header, rows)


# --- the quick CPU fixtures (faces_l2, faces_gan, digits_gan, pair fitting) -----------------


def fixtures() -> str:
    """docs/results.md: the fixtures' measures against their targets."""
    l2 = load("docs/results/faces_l2.json")
    gan = load("docs/results/faces_gan.json")
    dig = load("docs/results/digits_gan.json")
    fit = load("docs/results/pair_fit.json")

    def endpoint(res: dict, nd: int, row: str = "model") -> tuple[str, str]:
        return (num(metric(res, "endpoint_psnr", row), nd),
                num(metric(res, "endpoint_psnr_moving", row)))

    mid, mid_cd = metric(l2, "psnr@0.5"), metric(l2, "psnr@0.5", "cross_dissolve")
    best = metric(l2, "best_psnr@0.5") - metric(l2, "best_psnr@0.5", "cross_dissolve")
    gan_gain = metric(gan, "endpoint_psnr") - metric(gan, "endpoint_psnr", "identity")
    thinned = round(dig["n_images"] * (100 - metric(dig, "single_stroke_pct")) / 100)
    header = ["preset (training time, 2-core CPU)", "measure (test split)", "model", "baseline",
              "target", "met"]
    rows = [
        [f"`faces_l2` ({l2['step']} steps, ~10 min)", "endpoint PSNR (moving pixels)",
         "{} dB ({})".format(*endpoint(l2, 1)), "no motion {} ({})".format(
             *endpoint(l2, 1, "identity")), "≥ 30 dB", "yes"],
        ["", "frame at t = 0.5 vs the true half smile", f"{num(mid)} dB",
         f"cross-dissolve {num(mid_cd)}", "≥ dissolve + 3 dB",
         f"**no** ({signed(mid - mid_cd)}; best frame {signed(best)}): the paper's loss does "
         "not decide the mid frame (below)"],
        ["", "negJ over 21 frames", f"{num(metric(l2, 'neg_jacobian_pct'), 2)} %", "",
         "≤ 0.05 %", "yes"],
        ["", "inverse consistency", f"{num(metric(l2, 'inverse_psnr'))} dB", "", "≥ 35 dB",
         "yes"],
        [f"`faces_gan` ({gan['step']} iterations, 20–26 min)",
         "endpoint PSNR vs the true smile (moving pixels)", "{} dB ({})".format(*endpoint(gan, 2)),
         "no motion {} ({})".format(*endpoint(gan, 2, "identity")), "≥ no motion + 3 dB",
         f"yes ({signed(gan_gain, 2)})"],
        ["", "negJ", pct(metric(gan, "neg_jacobian_pct"), 3), "", "≤ 0.1 %", "yes"],
        ["", "the GIFs visibly smile", "yes (below)", "", "", "yes"],
        [f"`digits_gan` ({dig['step']} iterations, 15–23 min)",
         "warped test 3s the classifier calls 4", pct(metric(dig, "reached_target_pct"), 0),
         f"real 4s: {pct(metric(dig, 'reached_target_pct', 'real_targets'))}, real 3s: "
         f"{pct(metric(dig, 'reached_target_pct', 'identity'))}", "≥ 80 %", "yes"],
        ["", "one connected stroke (no tearing)", pct(metric(dig, "single_stroke_pct")),
         f"real 3s: {pct(metric(dig, 'single_stroke_pct', 'identity'), 0)}", "single stroke",
         f"mostly ({thinned} of {dig['n_images']} thinned, none torn)"],
        ["", "negJ", pct(metric(dig, "neg_jacobian_pct"), 2), "", "≤ 0.1 %", "yes"],
        [f"pair fitting, {fit['n_images']} test faces (64×64, the warp alone)",
         "endpoint PSNR (moving pixels)", "{} dB ({})".format(*endpoint(fit, 1)),
         "no motion {} ({})".format(*endpoint(fit, 1, "identity")), "≥ 30 dB", "yes"],
        ["", "negJ; smallest det J",
         f"{num(metric(fit, 'neg_jacobian_pct'), 2)} %; {num(metric(fit, 'min_det'), 2)} "
         "(the fit's bound: `J` in [1/2, 2])", "", "≤ 0.05 %", "yes"],
        ["", f"time per pair (fit and 21 frames, after a {num(fit['seconds_first'])} s first "
         "call)", f"{num(fit['seconds_per_pair'])} s", "", "≤ 20 s", "yes"],
    ]
    return table(header, rows)


def mid_frame_fits() -> str:
    """docs/results.md: per-pair fits, dB above the cross-dissolve at ``t = s``."""
    rows_json = load("docs/results/mid_frame_fits.json")["rows"]
    cd = rows_json["cross_dissolve"]
    labels = (
        ("stationary, end", "`stationary`, end frame only (the paper's loss)"),
        ("straight, end", "`straight`, end frame only"),
        ("time-dependent, end", "time-dependent (`v(x, t)`, 5 knots in t), end frame only"),
        ("stationary, end+mid", "`stationary`, end frame + true half smile"),
        ("straight, end+mid", "`straight`, end frame + true half smile"),
    )
    header = ["field, loss", "end frame", "t = 0.25", "t = 0.5", "best frame for s = 0.5",
              "t = 0.75"]
    rows = []
    for key, label in labels:
        r = rows_json[key]
        rows.append([
            label,
            f"{num(r['endpoint_psnr'])} dB",
            signed(r["psnr@0.25"] - cd["psnr@0.25"]),
            signed(r["psnr@0.5"] - cd["psnr@0.5"]),
            signed(r["best_psnr@0.5"] - cd["psnr@0.5"]),
            signed(r["psnr@0.75"] - cd["psnr@0.75"]),
        ])
    return table(header, rows)


# --- pair fitting next to SyN (benchmarks/results/cpu_pairs.json) ---------------------------


def _pair_rows(set_name: str) -> dict[str, dict]:
    rows = load("benchmarks/results/cpu_pairs.json")["rows"]
    return {r["method"]: r for r in rows if r["set"] == set_name}


_SYN_LABELS = (
    ("SyN, cross-correlation", "SyN, cross-correlation"),
    ("SyN, sum of squared differences", "SyN, sum of squared differences"),
    ("jwarp fit_pair (L2, default)", "jwarp, defaults (L2)"),
    ("jwarp fit_pair (local correlation)", "jwarp, local correlation"),
)


def _min_det(r: dict, n_pairs: int) -> str:
    folded = r["pairs_folded"]
    if folded == 0:
        return num(r["min_det"], 2)
    which = f"all {n_pairs} fold" if folded == n_pairs else f"{folded} of {n_pairs} folds"
    return f"{num(r['min_det'], 1 if r['min_det'] < -1 else 2)} ({which})"


def pairs_real() -> str:
    """docs/pairs.md: eight real neutral -> smiling pairs."""
    rows = _pair_rows("neutral -> smiling")
    n = len(rows["SyN, cross-correlation"]["psnr_per_pair"])
    best = {"jwarp fit_pair (L2, default)"}
    header = ["neutral -> smiling", "PSNR to target", "smallest det J", "J < 0.25 or > 4",
              "J <= 0", "bending (px^-2)", "s per pair"]
    out = [["no motion", f"{num(rows['no motion']['psnr'], 2)} dB", "", "", "", "", ""]]
    for method, label in _SYN_LABELS:
        r = rows[method]
        bold = (lambda s: f"**{s}**") if method in best else (lambda s: s)
        out.append([
            label,
            bold(f"{num(r['psnr'], 2)} dB"),
            bold(_min_det(r, n)),
            bold(f"{sig3(r['extreme_pct'])} %" if r["extreme_pct"] else "0"),
            bold(f"{sig3(r['fold_pct'])} %" if r["fold_pct"] else "0"),
            bold(num(r["bending"], 4 if r["bending"] < 0.1 else 3 if r["bending"] < 1 else 2)),
            _seconds(r, method in best),
        ])
    return table(header, out)


def _seconds(r: dict, first: bool) -> str:
    """Seconds per pair, over SyN with cross-correlation's (the same run), and the compile."""
    notes = []
    if "time_over_syn" in r and r["method"] != "SyN, cross-correlation":
        notes.append(f"{num(r['time_over_syn'], 2)}× SyN")
    if r["compile_s"]:
        notes.append(f"+{num(r['compile_s'])} s{' compile' if first else ''}")
    time = num(r["median_s"], 3 if r["median_s"] < 0.1 else 2)
    return f"{time} ({'; '.join(notes)})" if notes else time


def pairs_known() -> str:
    """docs/pairs.md: the same neutral faces under known smooth warps."""
    rows = _pair_rows("known warp")
    n = len(rows["SyN, cross-correlation"].get("psnr_per_pair", [0] * 8))
    header = ["known warp", "PSNR to target", "smallest det J", "J < 0.25 or > 4", "bending",
              "map error", "s per pair"]
    out = [["no motion", f"{num(rows['no motion']['psnr'], 2)} dB", "", "", "", "", ""]]
    best_psnr = max(r["psnr"] for m, r in rows.items() if m != "no motion")
    best_err = min(r["map_error_px"] for m, r in rows.items() if m != "no motion")
    for method, label in _SYN_LABELS:
        r = rows[method]
        psnr = f"{num(r['psnr'], 2)} dB"
        err = f"{num(r['map_error_px'], 3)} px"
        out.append([
            label.replace(" (L2)", ""),
            f"**{psnr}**" if r["psnr"] == best_psnr else psnr,
            _min_det(r, n),
            f"{sig3(r['extreme_pct'])} %" if r["extreme_pct"] else "0",
            num(r["bending"], 4 if r["bending"] < 0.01 else 3),
            f"**{err}**" if r["map_error_px"] == best_err else err,
            _seconds(r, False),
        ])
    return table(header, out)


# --- the last `make bench` run (benchmarks/results.json) ------------------------------------


def bench_run() -> str:
    """docs/performance.md: every row of benchmarks/results.json."""
    res = load("benchmarks/results.json")
    header = ["benchmark", "what", "median", "min – max", "compile", "peak RSS", "authors"]
    rows = []
    for r in res["rows"]:
        name = re.sub(r"\s+", " ", r["name"]).strip()
        bench = f"`{r['benchmark'].removesuffix('.py')}`"
        if "median_s" not in r:  # bench_memory: XLA's accounting of the gradient's memory
            rows.append([bench, name, f"20 steps: {num(r['total_mb_20'])} MB",
                         f"200 steps: {num(r['total_mb_200'])} MB "
                         f"({num(r['ratio_200_over_20'], 2)}×)", "",
                         f"{num(r['peak_rss_gb'])} GB", ""])
            continue
        authors = seconds(r["authors_s"]) if r.get("authors_s") else ""
        rows.append([
            bench,
            name,
            seconds(r["median_s"]),
            f"{seconds(r['min_s'])} – {seconds(r['max_s'])}",
            seconds(r["compile_s"]) if r.get("compile_s", 0) >= 0.01 else "",
            f"{num(r['peak_rss_gb'])} GB",
            authors,
        ])
    return table(header, rows)


# --- the paired experiment on real faces: L2 (fei_l2) beside the GAN (docs/real_results.md) --

def l2_vs_gan() -> str:
    """docs/real_results.md: FEI's test people, every method on the same aligned faces
    (python -m jwarp.evaluate --workdir runs/fei_l2 --compare-fit --compare-model smiles)."""
    res = load("docs/results/fei_l2.json")
    m = res["metrics"]
    cols = [("identity", "no motion"), ("model", "**`fei`: paired, L2**"),
            ("smiles", "`smiles`: unpaired, GAN"), ("fit", "`--fit --no-morph` (sees the smile)")]
    rows = [
        ("end frame against the person's smile: PSNR", "endpoint_psnr", lambda v: f"{num(v)} dB"),
        ("… lower half (mouth, cheeks)", "endpoint_psnr_lower", lambda v: f"{num(v)} dB"),
        ("… SSIM", "endpoint_ssim", lambda v: num(v, 3)),
        ("… SSIM, lower half", "endpoint_ssim_lower", lambda v: num(v, 3)),
        ("judged smiling", "judged_target_pct", pct),
        ("faces with a fold", "images_folded_pct", pct),
        ("pixels with `J < 0.25` or `J > 4`", "extreme_jacobian_pct", lambda v: pct(v, 2)),
        ("smallest `det J` ≥ 0.1", "images_min_det_ge_0.1_pct", pct),
        ("bending energy (px⁻²)", "bending_energy", lambda v: num(v, 3)),
    ]
    out = []
    for label, key, fmt in rows:
        out.append([label, *[fmt(m[key][c]) if m[key].get(c) is not None else ""
                             for c, _ in cols]])
    real = m["judged_target_pct"]["real_targets"]
    out.append(["judged smiling, the real smiles", "", "", "", pct(real)])
    return table([f"{res['n_images']} FEI test people", *[c for _, c in cols]], out)


def l2_vs_gan_photos() -> str:
    """docs/real_results.md: both face models on the held-out photos (jwarp-evaluate --photos)."""
    header = ["model", "judged smiling (judge A)", "(judge B)", "camera frames (A)",
              "photos with a fold", "smallest `det J` ≥ 0.1", "pixels changed far away"]
    rows = []
    for name, a, b in (("`smiles` (GAN)", "photos", "photos_unaligned"),
                       ("`fei` (L2)", "photos_fei", "photos_fei_unaligned")):
        ra, rb = load(f"docs/results/{a}.json"), load(f"docs/results/{b}.json")
        ta, tb = people_totals(ra), people_totals(rb)
        rows.append([name, pct(ta["judged_after_pct"]), pct(tb["judged_after_pct"]),
                     pct(ra["kinds"]["camera"]["judged_after_pct"]),
                     pct(ta["photos_folded_pct"]), pct(ta["photos_min_det_ge_0.1_pct"]),
                     str(ta["changed_far"])])
    return table(header, rows)


def sequences_table() -> str:
    """docs/real_results.md: paths against CK+'s real frames (jwarp-evaluate --sequences)."""
    res = load("docs/results/sequences.json")
    names = {"cross_dissolve": "cross-dissolve", "nearer_end": "the nearer end frame",
             "fit": "`--fit` (morph)", "fit_warp": "`--fit --no-morph`",
             "model": f"`--model {res.get('model')}` from frame 1"}
    rows = [[names.get(k, k), f"{num(t['best_psnr'])} dB", num(t["rank_corr"], 2)]
            for k, t in res["totals"].items()]
    return table([f"path ({len(res['sequences'])} sequences, {res['size']} px)",
                  "mean best PSNR", "rank correlation"], rows)


# --- faces in photos (docs/faces.md) -------------------------------------------------------

KIND_NAMES = {
    "colour": "colour photos, 160 to 2,204 px",
    "grey": "grey: FEI and SMILEsmileD test faces, grey photos",
    "camera": "camera frames (CK+, 640x490)",
    "paintings": "paintings (photos and frames, stylised)",
    "phone": "phone-style, face off-centre (3:4)",
    "noface": "no human face",
}


def faces_detection() -> str:
    """docs/faces.md: faces found on the real data sets (benchmarks/bench_faces.py)."""
    rows = load("benchmarks/results/cpu_faces.json")["rows"]
    header = ["images", "found", "share", "median time"]
    out = []
    for r in rows:
        ms = r.get("median_ms")
        out.append([r["name"], f"{r['found']} of {r['of']}", pct(r["percent"]),
                    seconds(ms / 1000) if ms else ""])
    return table(header, out)


def _judged(t: dict) -> str:
    if t.get("judged_after_pct") is None:
        return "", ""
    before, after = t["judged_before_pct"], t["judged_after_pct"]
    ratio = f" ({num(after / before)}x)" if before else ""
    return pct(before), f"**{pct(after)}**{ratio}"


def people_totals(res: dict) -> dict:
    """``jwarp-evaluate --photos``' totals over every kind but ``noface``, pooled."""
    people = [t for k, t in res["kinds"].items() if k != "noface"]

    def pooled(key: str, weight: str) -> float:
        return sum(t[key] * t[weight] for t in people) / sum(t[weight] for t in people)

    out = {
        "photos": sum(t["photos"] for t in people),
        "photos_with_faces": sum(t["photos_with_faces"] for t in people),
        "faces": sum(t["faces"] for t in people),
        "changed_far": sum(t["changed_far"] for t in people),
        "photos_folded_pct": pooled("photos_folded_pct", "photos_with_faces"),
        "photos_min_det_ge_0.1_pct": pooled("photos_min_det_ge_0.1_pct", "photos_with_faces"),
        "extreme_pct": pooled("extreme_pct", "photos_with_faces"),
        "seconds_per_photo": res["totals"]["seconds_per_photo"],
    }
    if all("judged_after_pct" in t for t in people):
        out["judged_before_pct"] = pooled("judged_before_pct", "faces")
        out["judged_after_pct"] = pooled("judged_after_pct", "faces")
    return out


def faces_photos() -> str:
    """docs/faces.md: the face model on held-out photos, by kind (jwarp-evaluate --photos)."""
    res = load("docs/results/photos.json")
    other = load("docs/results/photos_unaligned.json")  # the same photos, the other judge
    header = ["kind", "photos", "with a face found", "faces", "judged smiling: before",
              "after", "judge B: before", "after", "pixels changed far from the faces",
              "photos folded", "smallest `det J` ≥ 0.1", "seconds per photo"]
    rows = []
    kinds = [*res["kinds"].items(), ("all photos of people", people_totals(res))]
    others = [*other["kinds"].values(), people_totals(other)]
    for (kind, t), o in zip(kinds, others):
        found = f"{t['photos_with_faces']} of {t['photos']}"
        if kind == "noface":
            rows.append([KIND_NAMES[kind], str(t["photos"]), found, "0", *[""] * 8])
            continue
        rows.append([
            KIND_NAMES.get(kind, f"**{kind}**"), str(t["photos"]), found, str(t["faces"]),
            *_judged(t), *_judged(o), str(t["changed_far"]), pct(t["photos_folded_pct"]),
            pct(t["photos_min_det_ge_0.1_pct"]), num(t["seconds_per_photo"], 2),
        ])
    return table(header, rows)


def faces_speed() -> str:
    """docs/faces.md: a photo to a 120-frame MP4, end to end (benchmarks/bench_photo.py)."""
    res = load("benchmarks/results/cpu_photo.json")
    header = ["photo", "seconds, end to end (median)", "range", "CPU"]
    rows = [[r["name"], f"**{num(r['median_s'])} s**", f"{num(r['min_s'])} – {num(r['max_s'])} s",
             r["cpu"]] for r in res["rows"]]
    return table(header, rows)


# --- where the tables go --------------------------------------------------------------------

TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "readme-results": ("README.md", real_summary),
    "results-real": ("docs/results.md", real_summary),
    "results-fixtures": ("docs/results.md", fixtures),
    "results-mid-frame": ("docs/results.md", mid_frame_fits),
    "real-test-split": ("docs/real_results.md", real_test_split),
    "pairs-real": ("docs/pairs.md", pairs_real),
    "pairs-known": ("docs/pairs.md", pairs_known),
    "bench-run": ("docs/performance.md", bench_run),
    "l2-vs-gan": ("docs/real_results.md", l2_vs_gan),
    "l2-vs-gan-photos": ("docs/real_results.md", l2_vs_gan_photos),
    "sequences": ("docs/real_results.md", sequences_table),
    "faces-detection": ("docs/faces.md", faces_detection),
    "faces-photos": ("docs/faces.md", faces_photos),
    "faces-speed": ("docs/faces.md", faces_speed),
}

# A block may be indented (a table inside a list item): its lines get the opening marker's
# indentation.
_BLOCK = re.compile(
    r"^(?P<indent>[ ]*)(?P<open><!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(?P<close>^[ ]*<!-- /generated -->)",
    re.S | re.M,
)


def render(text: str, path: str) -> tuple[str, list[str]]:
    """``text`` with every generated block of ``path`` rewritten; the names of those that
    changed."""
    changed = []

    def replace(m: re.Match) -> str:
        name = m["name"]
        if name not in TABLES or TABLES[name][0] != path:
            raise SystemExit(f"{path}: unknown generated table {name!r}")
        indent = m["indent"]
        body = "".join(indent + line + "\n" for line in TABLES[name][1]().splitlines())
        if body != m["body"]:
            changed.append(name)
        return indent + m["open"] + body + m["close"]

    return _BLOCK.sub(replace, text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a table differs from its JSON")
    args = parser.parse_args(argv)
    stale, found = [], set()
    for path in sorted({p for p, _ in TABLES.values()}):
        text = (ROOT / path).read_text()
        found |= {m["name"] for m in _BLOCK.finditer(text)}
        new, changed = render(text, path)
        stale += [f"{path}: {name}" for name in changed]
        if changed and not args.check:
            (ROOT / path).write_text(new)
    missing = sorted(set(TABLES) - found)
    if missing:
        print("markers missing for: " + ", ".join(missing), file=sys.stderr)
        return 1
    if stale:
        verb = "out of date" if args.check else "rewritten"
        print("\n".join(f"{s} ({verb})" for s in stale))
        return 1 if args.check else 0
    print("every generated table is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
