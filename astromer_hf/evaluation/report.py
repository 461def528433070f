"""The evaluation's outputs, written into its ``output`` folder:

``results.csv``, ``results.md``
    The table: one row per method, one column per SPC, each cell the macro F1 per curve, mean ± standard deviation over
    the folds (``results.md`` also has the per-window table of the window classifiers, the protocol and the time).
``results_windows.csv``
    The per-window table (the papers' metric), for the methods that classify windows.
``scores.csv``, ``scores.json``
    Every cell (method × SPC × fold): macro F1 and accuracy per curve and per window, the sizes of its sets, its
    training history, time and confusion matrix; ``scores.json`` also holds the protocol, the configuration and the
    time of the shared steps.
``splits.json``
    The ``object_id`` of every test, training and validation curve of every fold and SPC.
``f1_vs_spc.png``
    Macro F1 per curve against SPC, one line per method, error bars the standard deviation over the folds.
``confusion_<method>_spc<k>.png``
    The confusion matrix of each method and SPC, per curve, summed over the folds (rows normalised).
``embedding_map.png``
    A 2-D map (UMAP, or t-SNE without umap-learn) of the first model's embeddings of fold 0's test curves, coloured
    by class (the classical features when no model is evaluated).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .config import METHODS, spc_sorted

LEVELS = {"curve": "f1_curve", "window": "f1_window"}


def summary_table(cells: list[dict], level: str = "curve", methods: list[str] | None = None) -> pd.DataFrame:
    """Mean and population std over folds of the macro F1 (``level``: ``"curve"`` or ``"window"``): a frame indexed
    by method (in ``methods`` order, else first appearance) with columns ``(spc, "mean" | "std" | "folds")``."""
    key = LEVELS[level]
    frame = pd.DataFrame([{"method": c["method"], "spc": c["spc"], "f1": c[key]} for c in cells
                          if c.get(key) is not None])
    if frame.empty:
        return pd.DataFrame()
    grouped = frame.groupby(["method", "spc"])["f1"]
    stats = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0), "folds": grouped.count()})
    table = stats.unstack("spc")
    table.columns = table.columns.swaplevel(0, 1)
    table = table.sort_index(axis=1, level=0, sort_remaining=False)
    order = [m for m in (methods or list(dict.fromkeys(frame["method"]))) if m in table.index]
    return table.loc[order]


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """``"0.712 ± 0.015"`` cells, columns ``SPC k``."""
    if table.empty:
        return pd.DataFrame()
    out = pd.DataFrame(index=table.index)
    for spc in sorted({column[0] for column in table.columns}):
        mean, std = table[(spc, "mean")], table[(spc, "std")]
        out[f"SPC {spc}"] = [f"{m:.3f} ± {s:.3f}" if pd.notna(m) else "" for m, s in zip(mean, std)]
    out.index.name = "method"
    return out


def _markdown(frame: pd.DataFrame) -> str:
    header = "| method | " + " | ".join(frame.columns) + " |"
    rule = "|---|" + "---|" * len(frame.columns)
    lines = [header, rule] + [f"| {index} | " + " | ".join(str(v) for v in row) + " |"
                              for index, row in zip(frame.index, frame.itertuples(index=False))]
    return "\n".join(lines)


def f1_vs_spc_figure(table: pd.DataFrame, title: str = "macro F1 per curve") -> Figure:
    figure = Figure(figsize=(9.5, 4.8), layout="constrained")
    ax = figure.subplots()
    spcs = sorted({column[0] for column in table.columns})
    for method in table.index:
        mean = np.array([table.loc[method, (spc, "mean")] for spc in spcs], dtype=float)
        std = np.array([table.loc[method, (spc, "std")] for spc in spcs], dtype=float)
        ax.errorbar(spcs, mean, yerr=std, marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xticks(spcs, [str(spc) for spc in spcs])
    ax.minorticks_off()
    ax.set_xlabel("training curves per class (SPC)")
    ax.set_ylabel("macro F1 (mean ± std over folds)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def embedding_map_points(evaluation) -> dict[str, Any] | None:
    """2-D coordinates of fold 0's test curves: the first model's embeddings (UMAP when umap-learn is installed and
    ``map_method`` allows, else t-SNE), or the standardised classical features when no model is evaluated."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    config = evaluation.config
    split = evaluation.splits[min(evaluation.splits)]
    test = evaluation.local(split.test)
    if evaluation.model_sources:
        name = next(iter(evaluation.model_sources))
        vectors, source = evaluation.embeddings(name)[test], f"Astromer embeddings ({name}, {config.embedding_pooling})"
    else:
        vectors, source = evaluation.features()[test], "classical features (no model evaluated)"
    vectors = StandardScaler().fit_transform(SimpleImputer(strategy="mean", keep_empty_features=True)
                                             .fit_transform(vectors))
    method = config.map_method
    if method in ("auto", "umap"):
        try:
            import umap  # noqa: F401
        except ImportError:
            if method == "umap":
                raise ImportError("map_method: umap needs the umap-learn package (pip install umap-learn)") from None
            method = "tsne"
        else:
            method = "umap"
    n = len(vectors)
    if method == "umap":
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(n_neighbors=min(15, n - 1), random_state=config.seed, n_jobs=1)
            points = reducer.fit_transform(vectors)
    else:
        from sklearn.manifold import TSNE

        points = TSNE(n_components=2, perplexity=max(2.0, min(30.0, (n - 1) / 3)), random_state=config.seed,
                      init="pca").fit_transform(vectors)
    return {"points": np.asarray(points), "labels": evaluation.labels[test], "method": method, "source": source,
            "fold": split.fold}


def embedding_map_figure(points: dict[str, Any], class_names: list[str]) -> Figure:
    figure = Figure(figsize=(7.0, 6.0), layout="constrained")
    ax = figure.subplots()
    colours = [f"C{i % 10}" for i in range(len(class_names))]
    markers = "os^Dv<>pP*"
    for index, name in enumerate(class_names):
        chosen = points["labels"] == index
        if chosen.any():
            ax.scatter(points["points"][chosen, 0], points["points"][chosen, 1], s=12, alpha=0.75,
                       color=colours[index], marker=markers[(index // 10) % len(markers)], label=name)
    ax.set_title(f"{points['method'].upper()} of the {points['source']}, fold {points['fold']} test curves")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize="small", markerscale=1.5, loc="best")
    return figure


def splits_payload(evaluation) -> dict:
    ids = evaluation.pool.object_ids
    payload: dict[str, Any] = {}
    for (fold, spc), split in sorted(evaluation.splits.items()):
        entry = payload.setdefault(f"fold_{fold}", {"test": ids[split.test].tolist()})
        entry[f"spc_{spc}"] = {"train": ids[split.train].tolist(), "validation": ids[split.validation].tolist()}
    return payload


def write_report(evaluation, points: dict[str, Any] | None) -> tuple[list[Path], pd.DataFrame]:
    """Write every output file (see the module docstring) and log them to W&B when configured; returns the files and
    the per-curve summary table."""
    from ..training.figures import confusion_matrix_figure

    config, cells, output = evaluation.config, evaluation.cells, evaluation.output
    labels = [label for label, _, _ in config.method_rows()]
    class_names = evaluation.pool.class_names
    for stale in output.glob("confusion_*.png"):  # from an earlier run with other methods or SPCs
        stale.unlink()
    files: list[Path] = []

    def save_figure(figure: Figure, name: str) -> None:
        path = output / name
        figure.savefig(path, dpi=110)
        files.append(path)

    table = summary_table(cells, "curve", labels)
    window_table = summary_table(cells, "window", labels)
    curve_text, window_text = formatted(table), formatted(window_table)
    curve_text.to_csv(output / "results.csv")
    files.append(output / "results.csv")
    if not window_text.empty:
        window_text.to_csv(output / "results_windows.csv")
        files.append(output / "results_windows.csv")
    elif (output / "results_windows.csv").exists():
        (output / "results_windows.csv").unlink()
    tidy = pd.DataFrame([{key: cell[key] for key in ("method", "base_method", "model", "spc", "fold", "f1_curve",
                                                      "accuracy_curve", "f1_window", "accuracy_window", "n_train",
                                                      "n_validation", "n_test", "n_test_windows", "seconds")}
                         for cell in cells])
    tidy.to_csv(output / "scores.csv", index=False)
    files.append(output / "scores.csv")
    (output / "splits.json").write_text(json.dumps(splits_payload(evaluation)))
    files.append(output / "splits.json")
    files.append(evaluation.write_scores())

    save_figure(f1_vs_spc_figure(table), "f1_vs_spc.png")
    for label in labels:
        for spc in spc_sorted(config.spc):
            matrices = [np.asarray(c["confusion"]) for c in cells if c["method"] == label and c["spc"] == spc]
            if matrices:
                figure = confusion_matrix_figure(np.sum(matrices, axis=0), class_names)
                figure.axes[0].set_title(f"{label}, SPC {spc}: per curve, {len(matrices)} fold(s)")
                save_figure(figure, f"confusion_{label.replace('@', '-')}_spc{spc}.png")
    if points is not None:
        save_figure(embedding_map_figure(points, class_names), "embedding_map.png")
    (output / "results.md").write_text(markdown_report(evaluation, curve_text, window_text))
    files.insert(1, output / "results.md")
    if config.wandb is not None:
        log_to_wandb(evaluation, curve_text, window_text, files)
    return files, table


def markdown_report(evaluation, curve_text: pd.DataFrame, window_text: pd.DataFrame) -> str:
    config, protocol = evaluation.config, evaluation.protocol()
    counts = ", ".join(f"{name} {count}" for name, count in protocol["pool_curves_per_class"].items())
    models = "; ".join(f"`{name}` = `{source}`" for name, source in protocol["models"].items()) or "none"
    lines = [
        "# Few-shot classification",
        "",
        f"Dataset `{config.data}`" + (f", band(s) {', '.join(config.bands)}" if config.bands else "") +
        f": {sum(protocol['pool_curves_per_class'].values())} labelled curves ({counts}). Models: {models}.",
        "",
        f"Protocol: SPC {', '.join(map(str, protocol['spc']))} × {config.folds} fold(s); per class {config.n_test} "
        f"test curves (the same for every SPC of a fold), SPC training curves and "
        f"max(1, round({config.validation_fraction} · SPC)) validation curves (early stopping of the trained networks only), from `few_shot_splits` (seed "
        f"{config.split_seed}). Cells: macro F1, mean ± population std over the folds. Per curve: one prediction per "
        "test curve (window classifiers average their windows' logits, weighted by observations).",
        "",
        "## Macro F1 per curve",
        "",
        _markdown(curve_text),
        "",
    ]
    if not window_text.empty:
        lines += ["## Macro F1 per window (the papers' metric; window classifiers only)", "", _markdown(window_text),
                  ""]
    lines += ["## Methods", ""]
    lines += [f"- `{label}`: {METHODS[method]}" + (f" (model `{model}`)" if model and len(config.models) > 1 else "")
              for label, method, model in config.method_rows()]
    timing = evaluation.timing
    per_method: dict[str, float] = {}
    for cell in evaluation.cells:
        per_method[cell["method"]] = per_method.get(cell["method"], 0.0) + cell["seconds"]
    lines += ["", "## Time", "",
              f"Total {timing.get('total', 0):.0f} s on {protocol['device']}. Shared steps: " +
              ", ".join(f"{key} {value:.1f} s" for key, value in timing.items() if key != "total") + ". Methods "
              "(all cells): " + ", ".join(f"{key} {value:.1f} s" for key, value in per_method.items()) + ".", ""]
    return "\n".join(lines)


def log_to_wandb(evaluation, curve_text: pd.DataFrame, window_text: pd.DataFrame, files: list[Path]) -> None:
    """Log the tables, the figures and the summary scores to a W&B run (offline without credentials)."""
    import wandb

    from ..training.loggers import AstromerWandbLogger

    settings = {"project": "astromer_hf", "name": "evaluation", "save_dir": str(evaluation.output),
                **evaluation.config.wandb}
    logger = AstromerWandbLogger(**settings)
    run = logger.experiment
    run.config.update({"evaluation": evaluation.config.to_dict()}, allow_val_change=True)
    payload: dict[str, Any] = {"results/per_curve": wandb.Table(dataframe=curve_text.reset_index())}
    if not window_text.empty:
        payload["results/per_window"] = wandb.Table(dataframe=window_text.reset_index())
    payload["results/scores"] = wandb.Table(dataframe=pd.read_csv(evaluation.output / "scores.csv"))
    for path in files:
        if path.suffix == ".png":
            payload[f"figures/{path.stem}"] = wandb.Image(str(path))
    run.log(payload)
    table = summary_table(evaluation.cells, "curve")
    for method in table.index:
        for spc in sorted({column[0] for column in table.columns}):
            run.summary[f"f1_curve/{method}/spc{spc}"] = float(table.loc[method, (spc, "mean")])
    logger.finalize("success")
