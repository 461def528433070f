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
"""

from __future__ import annotations

import argparse
import json
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
    from .data.download import DownloadError
    from .data.prepare import format_summary, dataset_summary, prepare_dataset

    settings = dict(args.set or [])
    try:
        prepare_dataset(args.survey, args.out, config=args.config, overwrite=args.overwrite, **settings)
    except DownloadError as error:  # a network failure, not a bug: say which file, without a traceback
        print(f"astromer data prepare: error: {error}", file=sys.stderr)
        return 2
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="astromer",
        description="Astromer light-curve transformer tools.",
        epilog="Training: astromer {fit,validate,test,predict} --config RECIPE.yaml (the Lightning CLI; "
        "`astromer fit --help` lists its options).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

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
    prepare = data_commands.add_parser("prepare", help="build a survey into train/validation/test Arrow splits")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINER_COMMANDS:
        from .training.cli import astromer_cli_main

        return astromer_cli_main(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, OSError) as error:
        print(f"astromer {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
