"""``python -m benchmarks``: every speed and memory figure of astromer_hf in one run, against the machine's measured
peak and, where it can run, the original TensorFlow Astromer.

What it measures (windows per second unless said otherwise; medians of ``--rounds`` rounds in which the compared
variants run one after the other, so they see the same machine load):

* matrix-multiply peak, fp32 and bf16 (``torch.mm``; TensorFlow's ``matmul`` too when the original runs);
* encoder forward of Astromer 1 and Astromer 2 (presets ``astromer-1``, ``astromer-2``) at each batch size: fp32,
  bf16 autocast, a bf16 model, and ``torch.compile`` (eager fallback when it fails); the original under
  ``tf.function``;
* the embedding path, :func:`astromer_hf.embed`, on simulated ragged curves of survey lengths, preprocessing
  (cleaning, windows, centring) and pooling included; the original ``SingleBandEncoder.encode``; the pooled and
  per-observation cosine of bf16 autocast against fp32;
* a pretraining step (forward, masked RMSE, backward, Adam) in fp32 and bf16-mixed; the original ``train_step``;
* the data path (Arrow rows to masked windows, the training collate) alone;
* peak resident memory: a pretraining step of Astromer 2 at the largest batch and embedding a prepared dataset, each
  in a fresh process, and this process.

Each rate is also given in GFLOP/s (the model's matrix-multiply work: projections, feed-forward, attention; a
training step counts three times the forward) and as a fraction of the peak of its dtype measured in the same run.

The original runs in a worker process (:mod:`benchmarks.original`) of an interpreter where TensorFlow and the
``ASTROMER`` package import: this one when they do (``pip install -e .[bench-tf]``), else the one given by
``--original-python`` (or ``ASTROMER_BENCH_ORIGINAL_PYTHON``). Without one, its columns are empty and the reason is
printed. The original package is Astromer 1 only; Astromer 2 rows have no ratio.

Usage::

    python -m benchmarks                        # the full run (a few minutes), table on stdout, JSON file
    python -m benchmarks --quick                # tiny sizes, seconds (what the tests run)
    python -m benchmarks --device cuda --json results.json
    python -m benchmarks --original-python /path/to/tf-venv/bin/python
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL_WORKER = Path(__file__).resolve().parent / "original.py"
#: The released Astromer 1 checkpoint, where the project's shared reference material is present: the bf16 cosine is
#: then measured on trained weights rather than random ones.
REFERENCE_CHECKPOINT = ROOT.parent / "shared" / "reference" / "astromer1-macho" / "macho_a0.zip"
MODELS = {"A1": "astromer-1", "A2": "astromer-2"}
#: --quick: the presets' attention and residual styles with tiny sizes.
QUICK_OVERRIDES = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "num_hidden_layers": 1}


# ----------------------------------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    quick: bool
    device: str
    rounds: int
    batches: tuple[int, ...]
    window: int
    embed_curves: int
    cosine_curves: int
    data_curves: int
    matmul_n: int
    max_call_seconds: float
    compile: bool
    budget_seconds: float | None
    overrides: dict
    original_python: str | None


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(
        quick=quick,
        device=args.device,
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        batches=tuple(args.batch_sizes or ((4,) if quick else (64, 256))),
        window=200,
        embed_curves=args.embed_curves or (6 if quick else 120),
        cosine_curves=3 if quick else 16,
        data_curves=16 if quick else 400,
        matmul_n=256 if quick else 2048,
        max_call_seconds=args.max_call_seconds or (2.0 if quick else 5.0),
        compile=not quick and not args.no_compile,
        budget_seconds=None if quick or args.budget_minutes == 0 else 60 * args.budget_minutes,
        overrides=dict(QUICK_OVERRIDES) if quick else {},
        original_python=None if args.no_original else (args.original_python or find_original_python()),
    )


def find_original_python() -> str | None:
    """An interpreter where TensorFlow and the original ASTROMER package import: ``ASTROMER_BENCH_ORIGINAL_PYTHON``,
    else this one when both are installed here, else None."""
    configured = os.environ.get("ASTROMER_BENCH_ORIGINAL_PYTHON")
    if configured:
        return configured
    from importlib.util import find_spec

    if find_spec("tensorflow") is not None and find_spec("ASTROMER") is not None:
        return sys.executable
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Rows and measurement
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table (and of the JSON ``rows``)."""

    section: str
    model: str
    batch: int | None
    variant: str
    rate: float | None  # items per second (median)
    unit: str = "windows/s"
    gflops: float | None = None
    peak_fraction: float | None = None
    original: float | None = None  # the original's rate on the same task, same unit
    ratio: float | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


@dataclass
class Variant:
    """A thing to time: ``run()`` does one call and returns its seconds; ``items`` windows (or curves) per call."""

    name: str
    run: Callable[[], float]
    items: int
    dtype: str = "fp32"
    original: bool = False
    note: str = ""
    samples: list[float] = field(default_factory=list)

    def rate(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


def interleave(variants: list[Variant], rounds: int, seconds: float | None = None) -> int:
    """One warm-up call of each variant, then rounds of one timed call of each, in turn: ``rounds`` of them, or
    fewer (at least one) when a round, as long as the warm-up calls took, would not fit in ``seconds``. Returns the
    rounds run."""
    start = time.perf_counter()
    for variant in variants:
        variant.run()
    if seconds is not None:
        per_round = max(time.perf_counter() - start, 1e-9)
        rounds = max(1, min(rounds, int(seconds / per_round)))
    for _ in range(rounds):
        for variant in variants:
            variant.samples.append(variant.items / variant.run())
    return rounds


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timer(call: Callable[[], object], device: torch.device) -> Callable[[], float]:
    """``call`` as a function returning the seconds it took (device work included)."""

    def run() -> float:
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        return time.perf_counter() - start

    return run


def capped_batch(make: Callable[[int], Callable[[], float]], batch: int, cap: float, probe: int = 2) -> tuple[int, str]:
    """The batch to time a slow variant at: ``batch``, unless one call would take more than ``cap`` seconds, as
    estimated from the faster of two calls of ``probe`` windows; then the largest power of two times ``probe`` that
    fits (at least ``probe``), with a note saying so."""
    run = make(probe)
    seconds = min(run(), run())
    estimate = seconds * batch / probe
    if estimate <= cap:
        return batch, ""
    chosen = probe
    while chosen * 2 <= batch and seconds * chosen * 2 / probe <= cap:
        chosen *= 2
    return chosen, f"timed at batch {chosen}: a call of {batch} would take ~{estimate:.0f} s here"


def encoder_flops(config, length: int) -> float:
    """Multiply-add work (2 FLOP each) of one window through the encoder: Q/K/V and output projections, Astromer 2's
    residual projections, attention scores and weighted values, feed-forward."""
    d, f, t = config.hidden_size, config.intermediate_size, length
    per_layer = 2 * t * d * 3 * d + 2 * t * d * d + 2 * 2 * t * t * d + 2 * 2 * t * d * f
    if config.residual_style == "projected":
        per_layer += 2 * 2 * t * d * d
    return float(config.num_hidden_layers * per_layer)


def training_flops(config, length: int) -> float:
    """A training step: the forward, and twice its work backward (gradients of the inputs and of the weights)."""
    return 3.0 * encoder_flops(config, length)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of /proc/self/status (Linux keeps ``ru_maxrss`` across
    ``exec``, so a fresh child would report its parent's), else ``ru_maxrss``."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------------------------------
# The original (TensorFlow) worker
# ----------------------------------------------------------------------------------------------------------------------
class Original:
    """The worker of :mod:`benchmarks.original` in another process; ``available`` False (with ``reason``) when there
    is none or it failed."""

    def __init__(self, python: str | None, log_path: Path) -> None:
        self.process = None
        self.info: dict = {}
        self.reason = ""
        if python is None:
            self.reason = ("TensorFlow and the original ASTROMER package are not importable here: pip install "
                           "-e .[bench-tf], or --original-python PATH (docs/benchmarks.md)")
            return
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in close()
        try:
            self.process = subprocess.Popen([python, str(ORIGINAL_WORKER)], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
                                            cwd=tempfile.gettempdir())
        except OSError as error:
            self.reason = f"cannot start {python}: {error}"
            self.log.close()
            return
        first = self._read()
        if not first.get("ready"):
            self.reason = f"the original code does not load with {python}: {first.get('error', 'no answer')}"
            self.close()
            return
        self.info = self.call(op="hello")

    @property
    def available(self) -> bool:
        return self.process is not None

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            return {"error": f"the worker stopped (exit code {self.process.poll()})"}
        return json.loads(line)

    def call(self, **request) -> dict:
        if not self.available:
            raise RuntimeError(self.reason)
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"original {request.get('op')}: {answer['error']}")
        return answer

    def timed(self, **request) -> Callable[[], float]:
        return lambda: float(self.call(**request)["seconds"])

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(OSError, ValueError):
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
        if getattr(self, "log", None) is not None:
            self.log.close()


def original_spec(config, window: int) -> dict | None:
    """The original SingleBandEncoder's settings for an Astromer 1 config (None for other architectures)."""
    if config.attention_mask_style != "additive_one" or config.residual_style != "none":
        return None
    return {"layers": config.num_hidden_layers, "d_model": config.hidden_size, "heads": config.num_attention_heads,
            "dff": config.intermediate_size, "maxlen": window}


# ----------------------------------------------------------------------------------------------------------------------
# The suite
# ----------------------------------------------------------------------------------------------------------------------
class Suite:
    def __init__(self, settings: Settings, scratch: Path, log=print) -> None:
        from astromer_hf import AstromerConfig

        self.settings = settings
        self.scratch = scratch
        self.device = torch.device(settings.device)
        self.log = log
        self.rows: list[Row] = []
        self.peaks: dict[str, float] = {}
        self.configs = {name: AstromerConfig.from_preset(preset, **settings.overrides)
                        for name, preset in MODELS.items()}
        self.cosine: dict = {}
        #: Probe slow variants (bf16 on a CPU, big training steps) before timing them at full batch (not --quick:
        #: its calls are small).
        self.probe = self.device.type == "cpu" and not settings.quick
        #: bf16 in hardware (a GPU, or a CPU with AVX512-BF16 / AMX): else bf16 is emulated, far slower than fp32,
        #: and its variants are timed at the first batch size only.
        self.native_bf16 = self.device.type == "cuda" or bool(
            {"avx512_bf16", "amx_bf16"} & set(describe_machine(self.device)["simd"]))
        self.deadline = None if settings.budget_seconds is None else time.perf_counter() + settings.budget_seconds
        self.groups_left = 0
        self.original = Original(settings.original_python if self.device.type == "cpu" else None,
                                 scratch / "original.log")
        if settings.original_python and self.device.type != "cpu":
            self.original.reason = "the original runs on the CPU only: no ratios with --device cuda"

    # -- helpers ----------------------------------------------------------------------------------------------------
    def add(self, section: str, model: str, batch: int | None, variant: Variant, *, flops: float | None = None,
            original: Variant | None = None, unit: str = "windows/s", **extra) -> Row:
        rate = variant.rate()
        row = Row(section=section, model=model, batch=batch, variant=variant.name, rate=rate, unit=unit,
                  note=variant.note, samples=[round(s, 3) for s in variant.samples], extra=extra)
        if rate is not None and flops is not None:
            row.gflops = rate * flops / 1e9
            peak = self.peaks.get(variant.dtype)
            row.peak_fraction = row.gflops * 1e9 / peak if peak else None
        if original is not None and original.rate() is not None and rate is not None:
            row.original, row.ratio = original.rate(), rate / original.rate()
        self.rows.append(row)
        self.log(f"    {row.variant}: {_fmt(rate, '.1f')} {unit}"
                 + ("" if row.ratio is None else f", {row.ratio:.2f}x the original"))
        return row

    def original_variant(self, name: str, items: int, **request) -> Variant | None:
        if not self.original.available:
            return None
        return Variant(name, self.original.timed(**request), items, original=True)

    def run_group(self, variants: list[Variant | None]) -> list[Variant]:
        """Interleave the variants, with the rounds the time budget leaves: the time to the deadline shared among
        the groups still to run. Fewer rounds than asked are noted on the variants."""
        chosen = [v for v in variants if v is not None]
        share = None
        if self.deadline is not None:
            share = max(0.0, self.deadline - time.perf_counter()) / max(1, self.groups_left)
        self.groups_left = max(0, self.groups_left - 1)
        rounds = interleave(chosen, self.settings.rounds, share)
        if rounds < self.settings.rounds:
            for variant in chosen:
                variant.note = "; ".join(filter(None, [variant.note, f"{rounds} round(s): time budget"]))
        return chosen

    # -- matrix multiply --------------------------------------------------------------------------------------------
    def matmul(self) -> None:
        device, settings = self.device, self.settings
        for dtype, torch_dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            n = settings.matmul_n
            if dtype == "bf16" and device.type == "cpu":
                n = self._affordable_bf16_size(n)
            a = torch.randn(n, n, device=device).to(torch_dtype)
            b = torch.randn(n, n, device=device).to(torch_dtype)
            flops = 2.0 * n**3
            # the two routes a model's GEMMs take: torch.mm (MKL) and linear (oneDNN where it applies)
            ours = [Variant(f"torch.mm {dtype} {n}^3", timer(lambda a=a, b=b: torch.mm(a, b), device), 1, dtype=dtype),
                    Variant(f"F.linear {dtype} {n}^3",
                            timer(lambda a=a, b=b: torch.nn.functional.linear(a, b), device), 1, dtype=dtype)]
            theirs = self.original_variant(f"original tf.linalg.matmul {dtype}", 1, op="matmul", n=n,
                                           dtype="float32" if dtype == "fp32" else "bfloat16")
            self.run_group([*ours, theirs])
            self.peaks[dtype] = max(variant.rate() for variant in ours) * flops  # the peak: the faster route
            for variant in ours:
                row = self.add("matmul peak", "-", n, variant, flops=flops, original=theirs, unit="calls/s")
                if theirs is not None:
                    row.extra["original_gflops"] = theirs.rate() * flops / 1e9
            if theirs is not None:
                self.peaks[f"original_{dtype}"] = theirs.rate() * flops

    def _affordable_bf16_size(self, largest: int) -> int:
        """CPUs without bf16 instructions multiply bf16 matrices far slower than fp32: the largest size up to
        ``largest`` whose product takes under a second."""
        n = 128
        while n * 2 <= largest:
            a = torch.randn(n * 2, n * 2).bfloat16()
            start = time.perf_counter()
            torch.mm(a, a)
            if (time.perf_counter() - start) * 8 > 1.0:
                break
            n *= 2
        return n

    # -- inputs -----------------------------------------------------------------------------------------------------
    def synthetic_windows(self) -> Path:
        """Full windows for the forward benchmarks: standard-normal magnitudes, times with exponential gaps of a
        day on average (centred), as ``(W, T)`` arrays in an npz the original reads too."""
        rng = np.random.default_rng(0)
        count, window = max(self.settings.batches), self.settings.window
        times = np.cumsum(rng.exponential(1.0, (count, window)), axis=1)
        times -= times.mean(axis=1, keepdims=True)
        path = self.scratch / "forward_windows.npz"
        np.savez(path, magnitudes=rng.standard_normal((count, window)).astype(np.float32),
                 times=times.astype(np.float32), attention_mask=np.ones((count, window), dtype=np.int64))
        return path

    # -- encoder forward --------------------------------------------------------------------------------------------
    def forward(self) -> None:
        from astromer_hf import AstromerModel
        from astromer_hf import modeling_astromer as modeling
        from astromer_hf.modeling_astromer import default_inference_batch_size

        device, settings = self.device, self.settings
        path = self.synthetic_windows()
        data = np.load(path)
        magnitudes, times, mask = (torch.from_numpy(data[k]).to(device) for k in ("magnitudes", "times",
                                                                                  "attention_mask"))
        for name, config in self.configs.items():
            torch.manual_seed(0)
            model = AstromerModel(config).to(device).eval()
            bf16_model = copy.deepcopy(model).to(torch.bfloat16)
            compiled, compile_note = self._compiled(model) if settings.compile else (None, "not compiled (--quick)")
            session, onnx_note = self._onnx(model, name, magnitudes, times, mask)
            flops = encoder_flops(config, settings.window)
            spec = original_spec(config, settings.window)

            def make(module, autocast=False, threads=None, one_slice=False, slices=None, column_multiple=None):
                def with_batch(batch: int) -> Callable[[], float]:
                    inputs = (magnitudes[:batch], times[:batch], mask[:batch])

                    def call():
                        default_threads = torch.get_num_threads()
                        default_slice = module.inference_batch_size if one_slice or slices else None
                        default_multiple = modeling.GEMM_COLUMN_MULTIPLE
                        if threads:
                            torch.set_num_threads(threads)
                        if one_slice or slices:
                            module.inference_batch_size = slices or 0
                        if column_multiple:
                            modeling.GEMM_COLUMN_MULTIPLE = column_multiple
                        try:
                            with torch.inference_mode(), (torch.autocast(device.type, dtype=torch.bfloat16)
                                                          if autocast else contextlib.nullcontext()):
                                module(*inputs[:2], attention_mask=inputs[2])
                        finally:
                            torch.set_num_threads(default_threads)
                            modeling.GEMM_COLUMN_MULTIPLE = default_multiple
                            if one_slice or slices:
                                module.inference_batch_size = default_slice

                    return timer(call, device)

                return with_batch

            for batch in settings.batches:
                self.log(f"  forward {name} batch {batch}")
                variants = [Variant("fp32", make(model)(batch), batch)]
                if name == "A1" and device.type == "cpu":  # the CPU settings: cache-sized slices, threads
                    slices = default_inference_batch_size(config, settings.window)
                    variants.append(Variant("fp32, one slice", make(model, one_slice=True)(batch), batch,
                                            note=f"inference_batch_size = 0 (default: slices of {slices})"))
                    if slices != 8:
                        variants.append(Variant("fp32, slices of 8", make(model, slices=8)(batch), batch,
                                                note="inference_batch_size = 8 (the floor before MIN_INFERENCE_SLICE)"))
                    if torch.get_num_threads() > 1:
                        variants.append(Variant("fp32, 1 thread", make(model, threads=1)(batch), batch,
                                                note=f"default: {torch.get_num_threads()} threads"))
                    multiple = modeling.GEMM_COLUMN_MULTIPLE
                    columns = 3 * config.num_attention_heads * (config.head_dim + 1)  # one mask column per head
                    padded = -(-columns // multiple) * multiple
                    variants.append(Variant("fp32, Q/K/V columns unpadded", make(model, column_multiple=1)(batch),
                                            batch, note=f"GEMM_COLUMN_MULTIPLE = 1 (default {multiple}: {columns} "
                                            f"-> {padded} columns)"))
                bf16_makers = (("bf16 autocast", make(model, autocast=True)), ("bf16 model", make(bf16_model)))
                for label, maker in bf16_makers if self.native_bf16 or batch == settings.batches[0] else ():
                    size, note = (capped_batch(maker, batch, settings.max_call_seconds) if self.probe else (batch, ""))
                    variants.append(Variant(label, maker(size), size, dtype="bf16", note=note))
                if compiled is not None:
                    variants.append(Variant("fp32 compiled", make(compiled)(batch), batch, note=compile_note))
                if session is not None:
                    feeds = {"magnitudes": magnitudes[:batch].cpu().numpy(), "times": times[:batch].cpu().numpy(),
                             "attention_mask": mask[:batch].cpu().numpy()}
                    variants.append(Variant("fp32 ONNX Runtime", timer(lambda feeds=feeds: session.run(None, feeds),
                                                                       device), batch, note=onnx_note))
                theirs = None
                if spec is not None:
                    theirs = self.original_variant("original tf.function fp32", batch, op="forward", spec=spec,
                                                   batch=batch, inputs=str(path))
                measured = self.run_group([*variants, theirs])
                for variant in measured:
                    if not variant.original:
                        self.add("encoder forward", name, batch, variant, flops=flops, original=theirs)
                if theirs is not None:
                    self.add("encoder forward", name, batch, theirs, flops=flops)
                if compiled is None and settings.compile:
                    self.rows.append(Row("encoder forward", name, batch, "fp32 compiled", None, note=compile_note))
                if session is None and onnx_note:
                    self.rows.append(Row("encoder forward", name, batch, "fp32 ONNX Runtime", None, note=onnx_note))

    def _onnx(self, model, name: str, magnitudes, times, mask) -> tuple[object | None, str]:
        """An onnxruntime session on ``astromer export onnx``'s graph of ``model`` (Astromer 1 only: an export
        takes tens of seconds), with a note giving its largest difference to PyTorch; (None, why) otherwise."""
        if name != "A1" or self.device.type != "cpu":
            return None, ""
        if self.settings.quick:
            return None, "not exported (--quick)"
        try:
            import onnxruntime

            from astromer_hf.export import export_onnx
        except ImportError as error:
            return None, f"not run ({error.name} is not installed: pip install onnx onnxruntime)"
        start = time.perf_counter()
        path = export_onnx(model, self.scratch / f"{name}.onnx")
        seconds = time.perf_counter() - start
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        batch = min(8, magnitudes.shape[0])
        feeds = {"magnitudes": magnitudes[:batch].cpu().numpy(), "times": times[:batch].cpu().numpy(),
                 "attention_mask": mask[:batch].cpu().numpy()}
        with torch.inference_mode():
            expected = model(magnitudes[:batch], times[:batch], attention_mask=mask[:batch]).last_hidden_state
        difference = float(np.abs(session.run(None, feeds)[0] - expected.cpu().numpy()).max())
        return session, (f"exported in {seconds:.0f} s; max |diff| to PyTorch {difference:.1e}; "
                         f"{options.intra_op_num_threads} threads")

    def _compiled(self, model) -> tuple[object | None, str]:
        """``torch.compile(model)`` with a dynamic batch, and a note; (None, why) when compilation fails (the eager
        model is then what runs everywhere)."""
        window = self.settings.window
        x = torch.zeros(2, window, device=self.device)
        mask = torch.ones(2, window, dtype=torch.long, device=self.device)
        for tensor in (x, mask):
            torch._dynamo.mark_dynamic(tensor, 0)
        start = time.perf_counter()
        try:
            compiled = torch.compile(model)
            with torch.inference_mode():
                compiled(x, x, attention_mask=mask)
        except Exception as error:  # noqa: BLE001 - compilation is optional: report and fall back to eager
            return None, f"compile failed, eager only ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
        return compiled, f"compiled in {time.perf_counter() - start:.0f} s (dynamic batch)"

    # -- embedding path ---------------------------------------------------------------------------------------------
    def curves(self) -> tuple[list[np.ndarray], Path]:
        """Simulated MACHO-like curves (survey lengths and cadence) as ``(N, 3)`` arrays, and as an npz for the
        original."""
        from astromer_hf.data.simulator import simulate_survey

        curves = [np.stack([c["time"], c["mag"], c["mag_err"]], axis=1).astype(np.float64)
                  for c in simulate_survey(self.settings.embed_curves, seed=0, cadence="macho")]
        path = self.scratch / "curves.npz"
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in curves])]).astype(np.int64)
        np.savez(path, values=np.concatenate(curves), offsets=offsets)
        return curves, path

    def embedding_model(self):
        """Astromer 1 for the embedding path: the released weights when the reference checkpoint is present (and not
        --quick), else random weights; and a note saying which."""
        from astromer_hf import AstromerModel

        if not self.settings.quick and REFERENCE_CHECKPOINT.is_file():
            from astromer_hf.convert.convert_tf_checkpoint import convert_tf_checkpoint

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                folder = convert_tf_checkpoint(REFERENCE_CHECKPOINT, self.scratch / "astromer-1-macho")
            return AstromerModel.from_pretrained(folder), "released macho_a0 weights"
        torch.manual_seed(0)
        return AstromerModel(self.configs["A1"]), "random weights"

    def embedding(self) -> None:
        from astromer_hf import embed

        device, settings = self.device, self.settings
        curves, path = self.curves()
        lengths = np.array([len(c) for c in curves])
        windows = int((lengths // settings.window + 1).sum())  # the original encode()'s windows of these curves
        model, weights = self.embedding_model()
        config = model.config
        batch = max(settings.batches)
        note = f"{len(curves)} curves, {lengths.sum()} observations ({weights})"

        def ours(pack: bool, threads: int | None = None):
            def call():
                default = torch.get_num_threads()
                if threads:
                    torch.set_num_threads(threads)
                try:
                    embed(curves, model, batch_size=batch, device=device, progress=False, pack_padding=pack)
                finally:
                    torch.set_num_threads(default)

            return call

        packed = Variant("embed() fp32", timer(ours(True), device), windows,
                         note=f"{note}; each window's padding computed as one position of key multiplicity (default)")
        fp32 = Variant("embed() fp32, full padding", timer(ours(False), device), windows,
                       note="pack_padding=False: every window padded to the window size, as the original")
        one_thread = None
        if device.type == "cpu" and torch.get_num_threads() > 1:
            one_thread = Variant("embed() fp32, 1 thread", timer(ours(True, threads=1), device),
                                 windows, note=f"default: {torch.get_num_threads()} threads")
        theirs = None
        spec = original_spec(config, settings.window)
        if spec is not None:
            theirs = self.original_variant("original encode() fp32", windows, op="encode", spec=spec,
                                           curves=str(path), batch=batch)
        self.log("  embedding path")
        self.run_group([packed, fp32, one_thread, theirs])
        flops = encoder_flops(config, settings.window)
        for variant in (packed, fp32, one_thread):
            if variant is not None:
                self.add("embed path", "A1", batch, variant, flops=flops, original=theirs)
        if theirs is not None:
            self.add("embed path", "A1", batch, theirs, flops=flops)

        # bf16 autocast on the first curves: its speed (one call; slow where the CPU has no bf16 instructions) and
        # how far its vectors are from fp32
        subset = min(settings.cosine_curves, len(curves))
        sub_windows = int((lengths[:subset] // settings.window + 1).sum())
        start = time.perf_counter()
        low = embed(curves[:subset], model, batch_size=batch, device=device, dtype=torch.bfloat16, progress=False,
                    return_observations=True)
        seconds = time.perf_counter() - start
        high = embed(curves[:subset], model, batch_size=batch, device=device, progress=False,
                     return_observations=True)
        pooled = _cosine(low.vectors, high.vectors)
        positions = _cosine(np.concatenate(low.observations), np.concatenate(high.observations))
        self.cosine = {"curves": subset, "pooled_min": float(pooled.min()), "pooled_median": float(np.median(pooled)),
                       "position_min": float(np.nanmin(positions)), "position_median": float(np.nanmedian(positions)),
                       "weights": weights}
        bf16 = Variant("embed() bf16 autocast", lambda: seconds, sub_windows, dtype="bf16",
                       note=f"first {subset} curves, one call; pooled cosine to fp32 min {pooled.min():.5f}, "
                            f"per-observation min {np.nanmin(positions):.4f}")
        bf16.samples.append(sub_windows / seconds)
        self.add("embed path", "A1", batch, bf16, flops=flops, original=theirs)

    # -- pretraining ------------------------------------------------------------------------------------------------
    def prepare_data(self) -> Path:
        from astromer_hf.data.prepare import prepare_dataset

        out = self.scratch / "synthetic"
        with _quiet():
            prepare_dataset("synthetic", out, config="macho", n_curves=self.settings.data_curves, seed=0)
        return out

    def data_module(self, path: Path, batch: int):
        from astromer_hf.training import AstromerDataModule

        repeat = max(1, -(-max(self.settings.batches) // int(0.8 * self.settings.data_curves)))
        data = AstromerDataModule(path=str(path), batch_size=batch, window_size=self.settings.window, repeat=repeat)
        with _quiet():
            data.setup()
        return data

    def data_path(self, path: Path) -> Path:
        """The training collate's rate, and the first batch of the largest size saved for the pretraining steps."""
        self.log("  data path")
        batch = min(self.settings.batches)
        data = self.data_module(path, batch)

        def epoch() -> float:
            start, count = time.perf_counter(), 0
            for windows in data.train_dataloader():
                count += len(windows["magnitudes"])
            epoch.count = count
            return time.perf_counter() - start

        epoch()
        variant = Variant("Arrow rows -> masked windows", epoch, epoch.count,
                          note=f"{epoch.count} windows per epoch, batch {batch}, num_workers 0")
        self.run_group([variant])
        self.add("data path", "-", batch, variant)

        largest = self.data_module(path, max(self.settings.batches))
        first = next(iter(largest.train_dataloader()))
        saved = self.scratch / "training_windows.npz"
        np.savez(saved, **{k: first[k].numpy() for k in ("magnitudes", "times", "attention_mask", "masked_positions",
                                                          "probed_positions", "labels")})
        return saved

    def pretraining(self, windows_path: Path) -> None:
        from astromer_hf.training import AstromerPretraining

        device, settings = self.device, self.settings
        data = np.load(windows_path)
        inputs = {k: torch.from_numpy(data[k]).to(device) for k in data.files}
        for name, config in self.configs.items():
            batches = settings.batches if name == "A1" else settings.batches[:1]
            spec = original_spec(config, settings.window)
            flops = training_flops(config, settings.window)
            torch.manual_seed(0)
            module = AstromerPretraining(model=MODELS[name], config_overrides=settings.overrides)
            model = module.model.to(device).train()
            optimizer = _optimizer(module.configure_optimizers())

            def make(autocast: bool):
                def with_batch(batch: int) -> Callable[[], float]:
                    batch_inputs = {k: v[:batch] for k, v in inputs.items()}

                    def step():
                        with (torch.autocast(device.type, dtype=torch.bfloat16) if autocast
                              else contextlib.nullcontext()):
                            loss = model(**batch_inputs).loss
                        loss.backward()
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)

                    return timer(step, device)

                return with_batch

            for batch in batches:
                self.log(f"  pretraining {name} batch {batch}")
                variants = [Variant("fp32", make(False)(batch), batch)]
                if self.native_bf16 or batch == batches[0]:
                    size, note = (capped_batch(make(True), batch, settings.max_call_seconds) if self.probe
                                  else (batch, ""))
                    variants.append(Variant("bf16-mixed", make(True)(size), size, dtype="bf16", note=note))
                theirs = None
                if spec is not None:
                    theirs = self.original_variant("original train_step fp32", batch, op="train", spec=spec,
                                                   batch=batch, inputs=str(windows_path))
                self.run_group([*variants, theirs])
                for variant in variants:
                    self.add("pretraining step", name, batch, variant, flops=flops, original=theirs)
                if theirs is not None:
                    self.add("pretraining step", name, batch, theirs, flops=flops)

    # -- memory -----------------------------------------------------------------------------------------------------
    def memory(self, data_path: Path, windows_path: Path) -> None:
        """Peak RSS of a fresh process doing one job: an Astromer 2 pretraining step at the largest batch, and
        embedding the prepared dataset."""
        batch = max(self.settings.batches)
        jobs = [
            ("pretraining step", "A2", batch, {"job": "pretrain", "preset": MODELS["A2"], "inputs": str(windows_path),
                                               "batch": batch}),
            ("pretraining step, gradient checkpointing", "A2", batch,
             {"job": "pretrain", "preset": MODELS["A2"], "inputs": str(windows_path), "batch": batch,
              "checkpointing": True}),
            ("embed a prepared dataset", "A1", batch, {"job": "embed", "preset": MODELS["A1"], "data": str(data_path),
                                                       "batch": batch}),
        ]
        for task, model, size, job in jobs:
            self.log(f"  peak memory: {task} ({model})")
            job = {**job, "overrides": self.settings.overrides, "device": self.settings.device}
            # --quick: in this process (a fresh interpreter costs more than the whole quick run)
            answer = child_main(job) if self.settings.quick else run_child(job)
            if self.settings.quick:
                answer["note"] += "; in this process (--quick), so the peak is this process's"
            flops = training_flops(self.configs[model], self.settings.window) if job["job"] == "pretrain" else None
            variant = Variant(f"{task}, {'this' if self.settings.quick else 'fresh'} process", lambda: 0.0, answer["items"],
                              note=f"peak RSS {answer['peak_rss_mb']:.0f} MB; {answer['note']}")
            variant.samples.append(answer["items"] / answer["seconds"])
            row = self.add("peak memory", model, size, variant, flops=flops,
                           unit="windows/s" if job["job"] == "pretrain" else "curves/s")
            row.extra["peak_rss_mb"] = answer["peak_rss_mb"]
        if self.original.available:
            rss = self.original.call(op="rss")["peak_rss_mb"]
            self.rows.append(Row("peak memory", "A1", None, "original worker (all its tasks)", None, unit="-",
                                 note=f"peak RSS {rss:.0f} MB", extra={"peak_rss_mb": rss}))
        rss = peak_rss_mb()
        self.rows.append(Row("peak memory", "-", None, "this benchmark process (all its tasks)", None, unit="-",
                             note=f"peak RSS {rss:.0f} MB", extra={"peak_rss_mb": rss}))

    # -- all --------------------------------------------------------------------------------------------------------
    def run(self) -> None:
        n_batches = len(self.settings.batches)
        # matmul fp32 and bf16, forward per model and batch, embedding, data path, pretraining (A1 every batch, A2
        # the first)
        self.groups_left = 2 + len(self.configs) * n_batches + 1 + 1 + n_batches + 1
        self.log("matrix-multiply peak")
        self.matmul()
        self.log("encoder forward")
        self.forward()
        self.log("embedding path")
        self.embedding()
        self.log("data path and pretraining")
        data_path = self.prepare_data()
        windows_path = self.data_path(data_path)
        self.pretraining(windows_path)
        self.log("peak memory")
        self.memory(data_path, windows_path)


def _optimizer(configured):
    return configured["optimizer"] if isinstance(configured, dict) else configured


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@contextlib.contextmanager
def _quiet():
    """No progress bars or info logs from datasets and the preparation."""
    import datasets

    datasets.disable_progress_bars()
    level = logging.getLogger("astromer_hf").level
    logging.getLogger("astromer_hf").setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        logging.getLogger("astromer_hf").setLevel(level)


# ----------------------------------------------------------------------------------------------------------------------
# Jobs in a fresh process (peak memory)
# ----------------------------------------------------------------------------------------------------------------------
def run_child(job: dict, module: str = "benchmarks.suite") -> dict:
    """Run ``job`` in a fresh interpreter (``python -m <module> --child <job>``); its last stdout line, as JSON."""
    result = subprocess.run([sys.executable, "-m", module, "--child", json.dumps(job)], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0:
        raise RuntimeError(f"memory job {job['job']} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_main(job: dict) -> dict:
    device = torch.device(job["device"])
    from astromer_hf import AstromerConfig

    config = AstromerConfig.from_preset(job["preset"], **job["overrides"])
    torch.manual_seed(0)
    if job["job"] == "pretrain":  # what AstromerPretraining builds, without importing Lightning
        from astromer_hf import AstromerForMaskedReconstruction

        data = np.load(job["inputs"])
        inputs = {k: torch.from_numpy(data[k][: job["batch"]]).to(device) for k in data.files}
        model = AstromerForMaskedReconstruction(config).to(device).train()
        if job.get("checkpointing"):  # keep each block's input only; recompute the block in the backward pass
            model.gradient_checkpointing_enable()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9)
        synchronize(device)
        start = time.perf_counter()
        model(**inputs).loss.backward()  # one step: activations, gradients and the optimizer state all allocated
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        seconds = time.perf_counter() - start
        return {"items": len(inputs["magnitudes"]), "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
                "note": f"fp32, one step (the first: allocations included) of {len(inputs['magnitudes'])} windows"
                        + (", gradient checkpointing" if job.get("checkpointing") else "")}
    from astromer_hf import AstromerModel, embed_to_parquet
    from astromer_hf.embedding import read_lightcurves

    model = AstromerModel(config)
    curves = read_lightcurves(job["data"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        written = embed_to_parquet(curves, model, Path(out) / "embeddings.parquet", batch_size=job["batch"],
                                   device=device, progress=False, chunk_size=256)
    seconds = time.perf_counter() - start
    return {"items": written.curves, "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
            "note": f"{written.curves} curves read 256 at a time from the Arrow dataset, written to Parquet"}


# ----------------------------------------------------------------------------------------------------------------------
# Machine, table, targets
# ----------------------------------------------------------------------------------------------------------------------
def describe_machine(device: torch.device) -> dict:
    flags, model_name = set(), platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
    machine = {
        "cpu": model_name,
        "cpus": os.cpu_count(),
        "simd": sorted(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "python": platform.python_version(),
        "device": str(device),
        # OpenMP settings that change how torch's threads wait for each other (docs/benchmarks.md)
        "environment": {name: os.environ[name] for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                                             "MKL_NUM_THREADS") if name in os.environ},
    }
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    return machine


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def format_table(rows: list[Row]) -> str:
    header = (f"{'section':<17} {'model':<5} {'batch':>5} {'variant':<38} {'rate':>9} {'unit':<9} {'GFLOP/s':>8} "
              f"{'% peak':>6} {'original':>9} {'ratio':>6}  note")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.section:<17} {row.model:<5} {_fmt(row.batch, 'd'):>5} {row.variant:<38} {_fmt(row.rate, '.1f'):>9} "
            f"{row.unit:<9} {_fmt(row.gflops, '.1f'):>8} "
            f"{_fmt(None if row.peak_fraction is None else 100 * row.peak_fraction, '.0f'):>6} "
            f"{_fmt(row.original, '.1f'):>9} {_fmt(row.ratio, '.2f'):>6}  {row.note}"
        )
    return "\n".join(lines)


def format_markdown(rows: list[Row]) -> str:
    """The table as Markdown (docs/benchmarks.md)."""
    lines = ["| section | model | batch | variant | rate | GFLOP/s | % of peak | original | ratio | note |",
             "|---|---|--:|---|--:|--:|--:|--:|--:|---|"]
    for row in rows:
        rate = "" if row.rate is None else f"{row.rate:.1f} {row.unit}"
        peak = _fmt(None if row.peak_fraction is None else 100 * row.peak_fraction, ".0f")
        lines.append(f"| {row.section} | {row.model} | {_fmt(row.batch, 'd')} | {row.variant} | {rate} | "
                     f"{_fmt(row.gflops, '.1f')} | {peak} | {_fmt(row.original, '.1f')} | "
                     f"{_fmt(row.ratio, '.2f')} | {row.note.replace('|', '/')} |")
    return "\n".join(lines)


def evaluate_targets(rows: list[Row], cosine: dict, batches: tuple[int, ...]) -> list[dict]:
    """Issue F's targets that this run measures, each with the measured value and whether it is met (None when the
    run could not measure it, e.g. without the original)."""

    def find(section, model, variant, batch=None):
        return next((r for r in rows if r.section == section and r.model == model and r.variant == variant
                     and (batch is None or r.batch == batch)), None)

    def target(name, value, threshold, higher=True):
        met = None if value is None else (value >= threshold if higher else value <= threshold)
        return {"target": name, "measured": value, "threshold": threshold, "met": met}

    out = []
    for batch in batches:
        fp32 = find("encoder forward", "A1", "fp32", batch)
        out.append(target(f"A1 forward fp32 batch {batch}: ratio to the original tf.function >= 1.2",
                          fp32 and fp32.ratio, 1.2))
        out.append(target(f"A1 forward fp32 batch {batch}: fraction of the fp32 matmul peak >= 0.8",
                          fp32 and fp32.peak_fraction, 0.8))
        for variant in ("bf16 autocast", "bf16 model"):
            bf16 = find("encoder forward", "A1", variant, batch)
            out.append(target(f"A1 forward {variant} batch {batch}: ratio to the original (fp32) >= 2",
                              bf16 and bf16.ratio, 2.0))
    out.append(target("bf16 autocast pooled cosine to fp32 >= 0.999", cosine.get("pooled_min"), 0.999))
    embed_row = find("embed path", "A1", "embed() fp32")
    out.append(target("embed path fp32: ratio to the original encode() >= 4", embed_row and embed_row.ratio, 4.0))
    for batch in batches:
        for variant, threshold in (("fp32", 1.2), ("bf16-mixed", 2.0)):
            step = find("pretraining step", "A1", variant, batch)
            out.append(target(f"A1 pretraining step {variant} batch {batch}: ratio to the original >= {threshold}",
                              step and step.ratio, threshold))
    for variant in ("pretraining step", "pretraining step, gradient checkpointing"):
        memory = find("peak memory", "A2", f"{variant}, fresh process")  # (--quick: not measured)
        out.append(target(f"A2 {variant} batch {max(batches)}: peak RSS <= 3700 MB",
                          memory and memory.extra.get("peak_rss_mb"), 3700.0, higher=False))
    return out


def format_targets(targets: list[dict]) -> str:
    lines = []
    for t in targets:
        state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        value = "-" if t["measured"] is None else f"{t['measured']:.4g}"
        lines.append(f"  [{state:^12}] {t['target']} (measured {value})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: seconds (for tests)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", metavar="PATH", default="benchmark-results.json",
                        help="where to write the results as JSON (default benchmark-results.json)")
    parser.add_argument("--rounds", type=int, help="timed rounds per figure (default 3, --quick 1)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", metavar="N", help="default 64 256 (--quick 4)")
    parser.add_argument("--embed-curves", type=int, metavar="N", help="simulated curves to embed (default 120)")
    parser.add_argument("--max-call-seconds", type=float, metavar="S",
                        help="a slow variant (bf16 without bf16 instructions) runs at a smaller batch when one call "
                             "would exceed this (default 5, --quick 2)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads (default: torch's, one per core; --quick: 1, which keeps its tiny calls "
                             "free of waits for a second thread on a busy machine)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--budget-minutes", type=float, default=6.0, metavar="M",
                        help="time for the timed rounds (default 6): a group whose round would overrun its share "
                             "runs fewer rounds (at least one) and says so; 0 for no limit. Set-up, compilation and "
                             "the fresh-process memory jobs come on top")
    parser.add_argument("--original-python", metavar="PATH",
                        help="interpreter with TensorFlow and the original ASTROMER package (default: "
                             "ASTROMER_BENCH_ORIGINAL_PYTHON, else this one when they import here)")
    parser.add_argument("--no-original", action="store_true", help="do not run the original code")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table and the targets as Markdown")
    parser.add_argument("--child", metavar="JOB", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child_main(json.loads(args.child))))
        return 0
    settings = settings_from(args)
    threads = args.threads or (1 if settings.quick else None)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("python -m benchmarks: error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    started, load_start = time.perf_counter(), os.getloadavg()
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Loading weights" bars between the progress lines

    def log(text: str) -> None:  # progress on stderr, the table on stdout
        print(f"[{time.perf_counter() - started:5.0f} s] {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="astromer-bench-") as scratch:
        suite = Suite(settings, Path(scratch), log=log)
        try:
            if not suite.original.available:
                log(f"original: not run ({suite.original.reason})")
            suite.run()
        finally:
            suite.original.close()
    seconds = time.perf_counter() - started
    machine = describe_machine(device)
    targets = evaluate_targets(suite.rows, suite.cosine, settings.batches)
    result = {
        "command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine,
        "original": suite.original.info or {"not_run": suite.original.reason},
        "settings": {**asdict(settings), "batches": list(settings.batches)},
        "peaks_gflops": {k: v / 1e9 for k, v in suite.peaks.items()},
        "bf16_cosine": suite.cosine,
        "rows": [asdict(row) for row in suite.rows],
        "targets": targets,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "seconds": seconds,
    }
    print(f"astromer_hf benchmarks: {machine['cpu']}, {machine['cpus']} CPUs, torch {machine['torch']} "
          f"({machine['torch_threads']} threads), device {settings.device}; load average at start "
          f"{load_start[0]:.1f}, at end {result['load_average']['end'][0]:.1f}"
          + "".join(f"; {k}={v}" for k, v in machine["environment"].items()))
    if suite.original.info:
        info = suite.original.info
        print(f"original: ASTROMER {info['astromer']}, TensorFlow {info['tensorflow']}")
    else:
        print(f"original: not run ({suite.original.reason})")
    print(format_table(suite.rows))
    if suite.cosine:
        c = suite.cosine
        print(f"bf16 autocast vs fp32 on {c['curves']} curves ({c['weights']}): pooled cosine min "
              f"{c['pooled_min']:.5f} (median {c['pooled_median']:.6f}), per-observation min {c['position_min']:.4f}")
    print("targets (issue F):")
    print(format_targets(targets))
    print(f"{seconds:.0f} s")
    if args.markdown:
        Path(args.markdown).write_text(f"{format_markdown(suite.rows)}\n\nTargets:\n\n{format_targets(targets)}\n")
        print(f"wrote {args.markdown}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
