"""The ``astromer`` command.

Subcommands:

``astromer convert --from-tf PATH --out DIR``
    Convert an original TensorFlow checkpoint (released zip or folder) into a ``save_pretrained`` folder.
``astromer demo [--model DIR | --preset NAME]``
    Embed the built-in example light curves and print a summary.
``astromer data prepare SURVEY [--config NAME] [--set KEY=VALUE ...] --out DIR``
    Build a survey dataset (train / validation / test Arrow splits) into DIR.
``astromer data info DIR``
    Counts per split and class, length and cadence histograms, cleaning report.
``astromer plot RUN [--out DIR]``
    A training run's learning curve, reconstructions of masked points and attention maps as PNG files.
``astromer embed INPUT [INPUT ...] --model NAME --out FILE.parquet``
    One embedding per light curve (a prepared dataset folder, a CSV / Parquet long table, a text file of one curve,
    a folder of one-curve files or several such files).
``astromer export onnx MODEL --out FILE.onnx``
    The encoder as an ONNX graph with dynamic batch and length axes (:mod:`astromer_hf.export`).
``astromer download NAME``
    Fetch and cache a named release (``astromer-base`` ...) so that ``from_pretrained(NAME)`` works offline.
``astromer publish-release NAME [--repo-id ORG/NAME]``
    Convert a release's official file and push it, with its model card, to the Hub (for maintainers).
``astromer push DIR --repo-id ORG/NAME [--private] [--revision BRANCH]``
    Push a ``save_pretrained`` folder with a model card (metrics from its ``training_metrics.json``).
``astromer data push DIR --repo-id ORG/NAME``
    Push a prepared dataset folder (splits, features, cleaning report, dataset card).
``astromer fit|validate|test|predict [--config RECIPE.yaml] [--section.key VALUE ...]``
    Train or evaluate with the Lightning CLI (the same as ``lightning fit``), Astromer pretraining on the simulator
    by default. See ``recipes/``.
``astromer evaluate --config recipes/eval_synthetic.yaml [--key VALUE ...]``
    The papers' few-shot classification protocol with its baselines: tables and figures (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence

#: Subcommands handed to the Lightning CLI (``astromer fit --config recipes/quickstart.yaml``).
TRAINER_COMMANDS = ("fit", "validate", "test", "predict")


def _convert(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from .convert.convert_tf_checkpoint import ConversionNote, convert_tf_checkpoint
    from .releases import missing_release_file_hint

    source = Path(args.from_tf)
    if not source.exists():
        raise FileNotFoundError(f"No checkpoint at {source}." + missing_release_file_hint(source.name))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionNote)
        out = convert_tf_checkpoint(source, args.out, overwrite=args.overwrite)
    for warning in caught:
        if issubclass(warning.category, ConversionNote):
            print(f"astromer convert: note: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    print(f"Converted {args.from_tf} -> {out}")
    print(f"Load it with: AutoModel.from_pretrained({str(out)!r}) after `import astromer_hf`")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from . import AstromerConfig, AstromerForMaskedReconstruction, AstromerProcessor
    from .example_lightcurves import make_example_lightcurves

    if args.per_class < 2:
        raise ValueError(f"--per-class must be at least 2 to compare curves of the same class, got {args.per_class}.")
    torch.manual_seed(args.seed)
    if args.model:
        model = AstromerForMaskedReconstruction.from_pretrained(args.model)
        processor = AstromerProcessor.from_pretrained(args.model)
        source = f"weights from {args.model}"
    else:
        config = AstromerConfig.from_preset(args.preset)
        model = AstromerForMaskedReconstruction(config)
        processor = AstromerProcessor.from_model_config(config)
        source = f"RANDOM weights of the {args.preset!r} architecture (pass --model DIR for trained weights)"
    model.eval()

    curves, labels = make_example_lightcurves(n_per_class=args.per_class, seed=args.seed)
    batch = processor(curves, mask=True, seed=args.seed)
    with torch.no_grad():
        out = model(**{k: batch[k] for k in ("magnitudes", "times", "attention_mask", "masked_positions", "labels",
                                             "probed_positions")})
        plain = model.astromer(batch["magnitudes"], batch["times"], attention_mask=batch["attention_mask"])
    pooled = _pool_per_curve(plain.last_hidden_state, batch["attention_mask"], batch["curve_index"], len(curves))

    n_params = sum(p.numel() for p in model.parameters())
    print(f"Astromer demo — {source}")
    print(f"  model: {model.config.num_hidden_layers} blocks x {model.config.hidden_size} wide, {n_params:,} parameters")
    print(f"  data: {len(curves)} example light curves ({', '.join(sorted(set(labels)))}), "
          f"{sum(len(c) for c in curves):,} observations")
    print("  cleaning:\n" + textwrap.indent(str(processor.last_cleaning_report), "    "))
    print(f"  windows: {batch['magnitudes'].shape[0]} of up to {batch['magnitudes'].shape[1]} observations")
    print(f"  per-observation embeddings: {tuple(plain.last_hidden_state.shape)}")
    print(f"  masked reconstruction of hidden magnitudes: RMSE {out.loss.item():.4f} mag, R2 {out.r2.item():.3f}")
    centred = pooled - pooled.mean(dim=0, keepdim=True)
    similarity = torch.nn.functional.cosine_similarity(centred[:, None], centred[None], dim=-1).numpy()
    np.fill_diagonal(similarity, -np.inf)
    agree = sum(labels[i] == labels[j] for i, j in enumerate(similarity.argmax(axis=1)))
    print(f"  nearest neighbour of each curve's mean embedding has the same class: {agree}/{len(labels)} "
          f"(chance ~{(args.per_class - 1) / (len(labels) - 1):.2f})")
    return 0


def _parse_setting(text: str) -> tuple[str, str]:
    """``KEY=VALUE``; VALUE stays text here and is read by the type of the configuration field it sets
    (:func:`astromer_hf.data.builder.check_settings`), which names the key, the value and the type on a mismatch."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _data_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import format_summary, dataset_summary, prepare_dataset

    settings = dict(args.set or [])
    prepare_dataset(args.survey, args.out, config=args.config, overwrite=args.overwrite, **settings)
    print(f"Prepared {args.survey} -> {args.out}")
    print(format_summary(dataset_summary(args.out)))
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from .data.prepare import dataset_summary, format_summary

    summary = dataset_summary(args.path)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _download(args: argparse.Namespace) -> int:
    from .hub import download_release

    folder = download_release(args.name, revision=args.revision)
    print(f"{args.name} -> {folder}")
    print(f"from_pretrained({args.name!r}) now loads it without network (HF_HUB_OFFLINE=1 works).")
    return 0


def _publish_release(args: argparse.Namespace) -> int:
    from .hub import publish_release

    commit = publish_release(args.name, args.repo_id, private=args.private, revision=args.revision)
    print(f"Published {args.name}: {commit.commit_url}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .hub import push_folder_to_hub

    commit = push_folder_to_hub(args.folder, args.repo_id, private=args.private, revision=args.revision,
                                commit_message=args.commit_message)
    print(f"Pushed {args.folder}: {commit.commit_url}")
    return 0


def _data_push(args: argparse.Namespace) -> int:
    from .data.hub import push_dataset_to_hub

    repo_id = push_dataset_to_hub(args.path, args.repo_id, private=args.private, commit_message=args.commit_message)
    print(f"Pushed {args.path} -> dataset {repo_id}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation.config import parse_evaluation_args
    from .evaluation.protocol import run_evaluation
    from .evaluation.report import formatted

    config = parse_evaluation_args(args.options)
    result = run_evaluation(config)
    table = formatted(result.table)
    print(f"\nMacro F1 per curve, mean ± std over {config.folds} fold(s):")
    print(table.to_string())
    print(f"Wrote {len(result.files)} files to {config.output} (results.md, results.csv, f1_vs_spc.png, ...) in "
          f"{result.timing.get('total', 0):.0f} s")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .training.plots import plot_run

    for path in plot_run(args.run, out=args.out, n_windows=args.windows):
        print(f"wrote {path}")
    return 0


def _embed(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from .embedding import embed_to_parquet, read_lightcurves
    from .loading_bars import hide_weight_loading_bars

    hide_weight_loading_bars()  # no "Loading weights" bar for a model read from disk (download bars stay)
    logging.getLogger("astromer_hf.embedding").setLevel(logging.ERROR)  # the cleaning report is printed below
    out = Path(args.out)
    curves = read_lightcurves(args.input, splits=args.split)
    written = embed_to_parquet(
        curves, args.model, out, shard_size=args.shard_size, overwrite=args.overwrite, pooling=args.pooling,
        batch_size=args.batch_size, device=args.device, dtype=None if args.dtype == "float32" else args.dtype,
        return_observations=args.observations, legacy=args.legacy, progress=False if args.no_progress else None,
    )
    dropped = written.curves - written.kept
    where = out if args.shard_size is None else f"{out}/ ({len(written.paths)} shard(s))"
    print(f"Embedded {written.kept} of {written.curves} light curves with {args.model} (pooling {args.pooling}"
          f"{', legacy windows' if args.legacy else ''}) -> {where}")
    if written.report.changed:
        note = f"; {dropped} curve(s) dropped (kept = false, embedding null)" if dropped else ""
        print(f"Cleaning changed the input{note}:")
        print(textwrap.indent(str(written.report), "  "))
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from .export import export_onnx
    from .loading_bars import hide_weight_loading_bars

    hide_weight_loading_bars()  # no "Loading weights" bar for a model read from disk (download bars stay)
    path = export_onnx(args.model, args.out, opset=args.opset, overwrite=args.overwrite)
    print(f"Exported the encoder of {args.model} -> {path} (inputs magnitudes, times, attention_mask of shape "
          "(batch, length); output last_hidden_state)")
    return 0


def _add_hub_options(parser: argparse.ArgumentParser, *, revision: bool = True) -> None:
    parser.add_argument("--private", action="store_true", default=None, help="create the repo private")
    if revision:
        parser.add_argument("--revision", metavar="BRANCH", help="branch to push to (created if needed)")
    parser.add_argument("--commit-message", metavar="TEXT")


def _pool_per_curve(states, attention_mask, curve_index, n_curves: int):
    """Mean of the per-observation embeddings `(W, T, D)` over every real observation of each curve -> `(C, D)`."""
    import torch

    weights = attention_mask.to(states.dtype).unsqueeze(-1)
    sums = torch.zeros(n_curves, states.shape[-1], dtype=states.dtype).index_add_(0, curve_index, (states * weights).sum(1))
    counts = torch.zeros(n_curves, dtype=states.dtype).index_add_(0, curve_index, weights.sum((1, 2)))
    return sums / counts.clamp_min(1.0)[:, None]


class _LazyEpilogParser(argparse.ArgumentParser):
    """An argument parser whose epilog is computed only when the help is printed (it imports the survey builders,
    which ``astromer --help`` and every other command need not pay for)."""

    def __init__(self, *args, epilog_factory=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.epilog_factory = epilog_factory

    def format_help(self) -> str:
        if self.epilog_factory is not None and self.epilog is None:
            self.epilog = self.epilog_factory()
        return super().format_help()


def _surveys_help() -> str:
    from .data.prepare import surveys_help

    return surveys_help()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="astromer",
        description="Astromer light-curve transformer tools.",
        epilog="Training: astromer {fit,validate,test,predict} --config RECIPE.yaml (the Lightning CLI; "
        "`astromer fit --help` lists its options). Errors print one line; --debug (or ASTROMER_HF_DEBUG=1) shows "
        "the full traceback.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_LazyEpilogParser)

    convert = commands.add_parser("convert", help="convert an original TensorFlow checkpoint")
    convert.add_argument("--from-tf", required=True, metavar="PATH", help="released zip or checkpoint folder")
    convert.add_argument("--out", required=True, metavar="DIR", help="output save_pretrained folder")
    convert.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    convert.set_defaults(handler=_convert)

    demo = commands.add_parser("demo", help="embed the built-in example light curves and print a summary")
    demo.add_argument("--model", metavar="DIR", help="a save_pretrained folder (e.g. from `astromer convert`)")
    demo.add_argument("--preset", default="astromer-1", help="architecture for random weights when --model is absent")
    demo.add_argument("--per-class", type=int, default=3, help="example curves per class")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)

    plot = commands.add_parser("plot", help="write a training run's figures as PNG files (learning curve, "
                               "reconstructions, attention maps)")
    plot.add_argument("run", metavar="RUN", help="the run folder, a recipe's save_dir (e.g. outputs/quickstart)")
    plot.add_argument("--out", metavar="DIR", help="where to write the PNG files (default RUN/figures)")
    plot.add_argument("--windows", type=int, default=4, help="validation windows in the reconstruction figure")
    plot.set_defaults(handler=_plot)

    embed = commands.add_parser("embed", help="embed light curves into a Parquet file (one row per curve: id, kept, "
                                "embedding)")
    embed.add_argument("input", metavar="INPUT", nargs="+", help="a prepared dataset folder (`astromer data prepare`), "
                       "a CSV or Parquet long table (id, time, mag, err), a text file of one curve (time mag err "
                       "columns), a folder of one-curve files, or several one-curve files (stars/*.dat); the id of "
                       "a file's curve is its name")
    embed.add_argument("--model", default="astromer-base", metavar="NAME",
                       help="release name, save_pretrained folder or Hub id (default astromer-base)")
    embed.add_argument("--out", required=True, metavar="FILE.parquet", help="the Parquet file to write (a folder "
                       "with --shard-size)")
    embed.add_argument("--split", action="append", metavar="NAME",
                       help="split of a dataset folder to embed (repeatable; default: every split)")
    embed.add_argument("--pooling", choices=("mean", "max", "gamma"), default="mean",
                       help="mean / max over a curve's observations, or the gamma-weighted layer mix (default mean)")
    embed.add_argument("--batch-size", type=int, default=256, metavar="N", help="windows per forward pass")
    embed.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    embed.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    embed.add_argument("--observations", action="store_true",
                       help="also write each curve's per-observation embeddings")
    embed.add_argument("--legacy", action="store_true",
                       help="the original encode(): overlapping legacy windows and float32 centring")
    embed.add_argument("--shard-size", type=int, metavar="N", help="write Parquet shards of N curves into the "
                       "folder --out instead of one file")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar")
    embed.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    embed.set_defaults(handler=_embed)

    export = commands.add_parser("export", help="export a model's encoder to another runtime's format")
    export_formats = export.add_subparsers(dest="export_format", required=True)
    onnx = export_formats.add_parser("onnx", help="an ONNX graph with dynamic batch and length axes")
    onnx.add_argument("model", metavar="MODEL", help="release name, save_pretrained folder or Hub id")
    onnx.add_argument("--out", required=True, metavar="FILE.onnx")
    onnx.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    onnx.add_argument("--overwrite", action="store_true", help="replace FILE.onnx if it exists")
    onnx.set_defaults(handler=_export_onnx)

    download = commands.add_parser("download", help="fetch and cache a named release for offline use")
    download.add_argument("name", help="release name, e.g. astromer-base")
    download.add_argument("--revision", help="hub revision of the release repo")
    download.set_defaults(handler=_download)

    publish = commands.add_parser("publish-release", help="convert a release's official file and push it to the Hub")
    publish.add_argument("name", help="release name, e.g. astromer-1-macho")
    publish.add_argument("--repo-id", metavar="ORG/NAME", help="target repo (default: the release's canonical repo)")
    publish.add_argument("--private", action="store_true", default=None, help="create the repo private")
    publish.add_argument("--revision", metavar="BRANCH", help="branch to push to (created if needed)")
    publish.set_defaults(handler=_publish_release)

    push = commands.add_parser("push", help="push a save_pretrained folder with a model card to the Hub")
    push.add_argument("folder", metavar="DIR")
    push.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    _add_hub_options(push)
    push.set_defaults(handler=_push)

    data = commands.add_parser("data", help="prepare and inspect survey datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    prepare = data_commands.add_parser("prepare", help="build a survey into train/validation/test Arrow splits",
                                       formatter_class=argparse.RawDescriptionHelpFormatter,
                                       epilog_factory=_surveys_help)
    prepare.add_argument("survey", help="survey name, e.g. synthetic")
    prepare.add_argument("--config", help="builder configuration, e.g. macho / ogle / ztf for synthetic")
    prepare.add_argument("--set", action="append", type=_parse_setting, metavar="KEY=VALUE",
                         help="override a configuration field, e.g. --set n_curves=2000 (repeatable); read by the "
                         "field's type: integers, numbers, true/false, null, lists as JSON or a,b,c, text as is")
    prepare.add_argument("--out", required=True, metavar="DIR")
    prepare.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    prepare.set_defaults(handler=_data_prepare)
    info = data_commands.add_parser("info", help="summarise a prepared dataset folder")
    info.add_argument("path", metavar="DIR")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(handler=_data_info)
    data_push = data_commands.add_parser("push", help="push a prepared dataset folder to the Hub")
    data_push.add_argument("path", metavar="DIR")
    data_push.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    _add_hub_options(data_push, revision=False)
    data_push.set_defaults(handler=_data_push)

    # Its options are read by jsonargparse (astromer_hf.evaluation.config.parse_evaluation_args): `+` as the prefix
    # leaves every `--key value` to it, `--help` included.
    evaluate = commands.add_parser("evaluate", help="the papers' few-shot classification protocol with its baselines "
                                   "(--config recipes/eval_synthetic.yaml; --help lists every setting)",
                                   add_help=False, prefix_chars="+")
    evaluate.add_argument("options", nargs=argparse.REMAINDER, help="--config FILE.yaml and --key VALUE overrides")
    evaluate.set_defaults(handler=_evaluate)
    return parser


def debug_requested(argv: list[str]) -> bool:
    """``--debug`` among the arguments (removed from them), or ``ASTROMER_HF_DEBUG`` set to a true value."""
    if "--debug" in argv:
        argv.remove("--debug")
        return True
    return os.environ.get("ASTROMER_HF_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


#: Errors that say what is wrong with the user's input, files or network: their message is enough. Anything else
#: is shown with its type, so that a bug is still recognisable without the traceback.
EXPECTED_ERRORS = (ValueError, TypeError, KeyError, OSError, RuntimeError)


#: How jsonargparse's messages for a value of the wrong shape begin: in a Union error, the member errors that are
#: not about what the user meant.
_SHAPE_ERRORS = ("Not a valid subclass", "Expected a ", "Expected an ", "Does not validate against", "Import path ",
                 "Problem with given class_path")


def _union_member_error(text: str) -> str | None:
    """The error a class of a recipe raised itself, from the text of jsonargparse's Union error.

    A Union field (``trainer.logger``: a logger, a list of loggers, a bool or None) tries each member type and keeps
    only the first one's error as the cause; the others, among them the ``ValueError`` a logger's constructor raised
    (``mode: online`` without credentials), survive only in the message's ``Errors:`` list, one ``  - `` item per
    member. Returns the first item that is not about the value's shape, or None."""
    if "Does not validate against any of the Union subtypes" not in text or "\nErrors:\n" not in text:
        return None
    body = text.split("\nErrors:\n", 1)[1].split("\nGiven value type:", 1)[0]
    items, current = [], None
    for line in body.splitlines():
        if line.startswith("  - "):
            current = [line[4:]]
            items.append(current)
        elif current is not None:
            current.append(line.strip())
    found = [" ".join(item).strip() for item in items if not item[0].startswith(_SHAPE_ERRORS)]
    return found[0] if found else None


def error_message(error: BaseException) -> str:
    """One readable line (or paragraph) for an error, without the traceback.

    An error that jsonargparse raised while building a recipe's class (its message dumps the whole configuration)
    is replaced by the error that caused it, which names the problem.
    """
    while error.__cause__ is not None and type(error).__module__.startswith("jsonargparse") or (
        error.__cause__ is not None and "Does not validate against any of the Union subtypes" in str(error)
    ):
        member = _union_member_error(str(error))
        if member is not None:
            return member
        error = error.__cause__
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    text = text.strip() or type(error).__name__
    return text if isinstance(error, EXPECTED_ERRORS) else f"{type(error).__name__}: {text}"


def report_error(command: str, error: BaseException) -> None:
    print(f"{command}: error: {error_message(error)}", file=sys.stderr)
    print("(run again with --debug, or ASTROMER_HF_DEBUG=1, for the full traceback)", file=sys.stderr)


def _lightning_command_note(argv: Sequence[str]) -> None:
    """One line on stderr when the ``lightning`` command pip wrote for astromer_hf is gone or another package's.

    astromer_hf and lightning-sdk both install ``bin/lightning``: pip gives it to the package installed last and
    deletes it when either is uninstalled (docs/training.md, "The `lightning` and `astromer fit` commands"). Checked
    on ``astromer fit|validate|test|predict`` and ``astromer --help`` only: it reads our RECORD and the file it lists,
    and stays silent when astromer_hf is not installed (a checkout on PYTHONPATH) or in a DDP worker.
    """
    import os
    import shlex
    from importlib import metadata
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    command = next((argument for argument in argv if not argument.startswith("-")), None)  # None: `astromer --help`
    if command not in (None, *TRAINER_COMMANDS) or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    # The first installed astromer_hf whose RECORD lists the script (an egg-info in the working directory lists none).
    found = next(((dist, entry) for dist in metadata.distributions(name="astromer_hf") for entry in dist.files or ()
                  if entry.name in ("lightning", "lightning.exe")), None)
    if found is None:
        return
    dist, entry = found
    script = os.path.normpath(dist.locate_file(entry))
    try:
        with open(script, "rb") as handle:
            content = handle.read(1 << 20)
    except FileNotFoundError:
        content = None
    except OSError:
        return
    if content is not None and b"astromer_hf" in content:
        return  # ours: `lightning fit` trains, and other subcommands reach lightning-sdk
    try:  # how pip installed astromer_hf, to redo it
        origin = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        origin = {}
    if not isinstance(origin, dict) or not isinstance(origin.get("url"), str):
        origin = {}
    if origin.get("url", "").startswith("file:"):
        editable = origin.get("dir_info", {}).get("editable")
        source = ("-e " if editable else "") + shlex.quote(url2pathname(urlsplit(origin["url"]).path))
    elif "vcs_info" in origin:
        vcs = origin["vcs_info"]
        source = shlex.quote(f"astromer_hf @ {vcs['vcs']}+{origin['url']}@{vcs.get('commit_id', '')}".rstrip("@"))
    else:
        source = f"astromer_hf=={dist.version}" if dist.version else "astromer_hf"
    state, after = "is another package's", ""
    if content is None:
        state = "is missing (uninstalling lightning-sdk deletes it, even when astromer_hf wrote it last)"
    elif b"lightning_sdk" in content:
        state = "is lightning-sdk's (installed after astromer_hf), which has no `fit`"
        after = " (it passes lightning-sdk's own commands on to lightning-sdk)"
    print(f"astromer: note: {script} {state}; `astromer fit --config RECIPE.yaml` trains the same way, and "
          f"`pip install --force-reinstall --no-deps {source}` restores astromer_hf's `lightning`{after}.",
          file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _lightning_command_note(argv)
    debug = debug_requested(argv)
    from .loading_bars import command_settings_restored, hide_weight_loading_bars

    if argv and argv[0] in TRAINER_COMMANDS:
        from .training.cli import astromer_cli_main

        with command_settings_restored():
            return astromer_cli_main(argv, debug=debug)
    args = build_parser().parse_args(argv)
    try:
        with command_settings_restored():
            if args.command in ("plot", "demo"):  # no "Loading weights" bar for a model read from disk
                hide_weight_loading_bars()
            return args.handler(args)
    except KeyboardInterrupt:
        print("astromer: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        command = " ".join(["astromer", args.command, *([args.data_command] if args.command == "data" else [])])
        report_error(command, error)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
