"""``cf-iap-train train cddgm|iap|seg STORE --out RUN_DIR``: one Lightning run, one bundle.

Run directory::

    run.json                 model, preset, architecture config, vocabulary, store, command;
                             after each invocation also train/val slice counts, its wall
                             time (``invocations``) and the total (``train_seconds``)
    checkpoints/last.ckpt    written atomically every few hundred steps, at the end and on
                             Ctrl-C; ``--resume`` continues from it (optimiser, step, EMA,
                             data-order position) and ends where an uninterrupted run would
    checkpoints/best-*.ckpt  the best on validation (val_loss; the segmenter: val_dice)
    logs/                    CSV (default) or TensorBoard logs
    bundle/                  the model bundle the plugin loads (EMA weights where an EMA is
                             kept; the best-on-validation checkpoint at the end of a run)
    summary.json             steps, time, metrics, the bundle path

Hardware is Lightning's business: ``--accelerator/--devices/--strategy/--num-nodes`` go to the
Trainer, so DDP works on one machine, under ``torchrun`` and under SLURM. Mixed precision is
used on GPU (the preset's ``gpu_precision``); the CPU trains in fp32 (no native bf16 here).
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from napari_cf_iap.errors import InputError, OutputExistsError
from napari_cf_iap.iap import IAPVocabulary
from napari_cf_iap.io.atomic import atomic_write_text

from .dataset import store_vocabulary
from .init_from import check_same_architecture, init_record, load_start_bundle
from .presets import MODELS, TrainPreset, get_preset
from .slice_store import SliceStore

LOW_PCT, HIGH_PCT = 10.0, 99.0


@dataclass
class HardwareOptions:
    """Trainer flags that choose the hardware; ``None`` = Lightning's default."""

    accelerator: str = "auto"
    devices: str | int = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | None = None
    num_workers: int = 0
    threads: int | None = None


@dataclass
class RunOptions:
    """What to train, where, and the overrides of the preset."""

    model: str
    store: Path
    out: Path
    preset: str = "default"
    overrides: dict[str, Any] = field(default_factory=dict)
    max_time: str | None = None
    resume: bool = False
    with_augmentations: bool = False
    vocabulary: str = "auto"
    init_from: Path | None = None
    log: str = "csv"
    seed: int = 0
    command: str = ""


def parse_duration(text: str | None) -> dt.timedelta | None:
    """``HH:MM:SS`` or ``DD:HH:MM:SS`` to a timedelta."""
    if not text:
        return None
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) not in (3, 4) or any(p < 0 for p in parts):
        raise InputError(f"--max-time must be HH:MM:SS or DD:HH:MM:SS, got {text!r}")
    days = parts[0] if len(parts) == 4 else 0
    h, m, s = parts[-3:]
    return dt.timedelta(days=days, hours=h, minutes=m, seconds=s)


def build_config(model: str, preset: TrainPreset, vocabulary: IAPVocabulary) -> Any:
    """The core architecture config of ``model`` for a preset (``arch`` + overrides + size)."""
    from napari_cf_iap.models.config import CDDGMConfig, IAPPredictorConfig, SegmenterConfig

    kwargs = {"image_size": preset.image_size, **preset.arch_overrides}
    if model == "cddgm":
        return getattr(CDDGMConfig, preset.arch)(
            vocabulary.dim, cond_dropout=preset.cond_dropout, **kwargs
        )
    if model == "iap":
        return getattr(IAPPredictorConfig, preset.arch)(vocabulary.dim, **kwargs)
    return getattr(SegmenterConfig, preset.arch)(**kwargs)


def build_module(
    model: str, config: Any, preset: TrainPreset, vocabulary: IAPVocabulary, **extra: Any
) -> Any:
    """The Lightning module of ``model``."""
    args = (config.to_dict(), preset.to_dict(), vocabulary.to_dict())
    if model == "cddgm":
        from .cddgm_module import CDDGMModule

        return CDDGMModule(*args)
    if model == "iap":
        from .iap_module import IAPModule

        return IAPModule(*args, class_weights=extra.get("class_weights"))
    from .seg_module import SegModule

    return SegModule(*args)


def _precision(hw: HardwareOptions, preset: TrainPreset) -> str:
    if hw.precision:
        return hw.precision
    gpu = hw.accelerator in ("gpu", "cuda") or (
        hw.accelerator == "auto" and torch.cuda.is_available()
    )
    return preset.gpu_precision if gpu else "32-true"


def _devices(value: str | int) -> str | int:
    if isinstance(value, int) or value == "auto" or "," in str(value):
        return value
    try:
        return int(value)
    except ValueError:
        return value


def _logger(kind: str, out: Path) -> Any:
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    if kind == "csv":
        return CSVLogger(out, name="logs")
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            try:
                import tensorboardX  # noqa: F401
            except ImportError:
                raise InputError("--log tensorboard needs `pip install tensorboard`") from None
        return TensorBoardLogger(out, name="logs")
    raise InputError(f"--log must be csv or tensorboard, got {kind!r}")


def _prepare_run_dir(
    opts: RunOptions,
) -> tuple[TrainPreset, IAPVocabulary, SliceStore, dict, Any]:
    """Create or reopen the run directory; on resume the saved preset and vocabulary win.

    The last item is the ``--init-from`` bundle when a new run loaded it (else ``None``)."""
    if opts.model not in MODELS:
        raise InputError(f"model must be one of {MODELS}, got {opts.model!r}")
    store = SliceStore.open(opts.store)
    run_file = opts.out / "run.json"
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    # DDP children (Lightning's launcher, torchrun, SLURM) rebuild the same run without writing
    follower = bool(rank_zero_only.rank)
    if opts.resume and run_file.is_file():
        saved = json.loads(run_file.read_text())
        if saved["model"] != opts.model:
            raise InputError(f"{opts.out} is a {saved['model']} run, not {opts.model}")
        preset = TrainPreset(**saved["preset"]).replace(
            **{k: v for k, v in opts.overrides.items() if k in ("max_steps", "max_epochs")}
        )
        vocabulary = IAPVocabulary.from_dict(saved["vocabulary"])
        return preset, vocabulary, store, saved, None
    started = any((opts.out / name).exists() for name in ("checkpoints", "summary.json", "bundle"))
    if not follower and started:
        raise OutputExistsError(
            f"{opts.out} already holds a run; pass --resume or choose another --out"
        )
    preset = get_preset(opts.model, opts.preset).replace(**opts.overrides)
    start = None
    if opts.init_from:  # fine-tuning: the bundle's vocabulary and architecture
        start = load_start_bundle(opts.init_from, opts.model)
        vocabulary = start.vocab
    else:
        vocabulary = store_vocabulary(store, opts.vocabulary)
    config = build_config(opts.model, preset, vocabulary)
    if start is not None:
        check_same_architecture(start, config)
    saved = {
        "model": opts.model,
        "preset": preset.to_dict(),
        "config": config.to_dict(),
        "vocabulary": vocabulary.to_dict(),
        "store": str(Path(opts.store).resolve()),
        "with_augmentations": opts.with_augmentations,
        "seed": opts.seed,
        "init_from": init_record(start) if start is not None else None,
        "command": opts.command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if not follower:
        opts.out.mkdir(parents=True, exist_ok=True)
        # a run.json without checkpoints is from a run that failed before training: replace it
        atomic_write_text(run_file, json.dumps(saved, indent=2), overwrite=True)
    return preset, vocabulary, store, saved, start


def run(opts: RunOptions, hw: HardwareOptions | None = None) -> dict[str, Any]:
    """Train one model; return the summary (also written to ``RUN_DIR/summary.json``)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import (
        EarlyStopping,
        EMAWeightAveraging,
        ModelCheckpoint,
        TQDMProgressBar,
    )

    from .callbacks import LastCheckpoint, PeriodicBundle
    from .datamodule import StoreDataModule

    hw = hw or HardwareOptions()
    if hw.threads:
        torch.set_num_threads(int(hw.threads))
    opts.out = Path(opts.out)
    max_time = parse_duration(opts.max_time)  # bad flags fail before the run dir is made
    if opts.log not in ("csv", "tensorboard"):
        raise InputError(f"--log must be csv or tensorboard, got {opts.log!r}")
    preset, vocabulary, store, saved, start = _prepare_run_dir(opts)
    config = build_config(opts.model, preset, vocabulary)
    seed = int(saved.get("seed", opts.seed))  # on resume the run's own seed
    pl.seed_everything(seed, workers=True, verbose=False)
    data = StoreDataModule(
        store,
        opts.model,
        vocabulary,
        preset.image_size,
        preset.batch_size,
        flip=preset.flip,
        with_augmentations=saved.get("with_augmentations", opts.with_augmentations),
        num_workers=hw.num_workers,
        seed=seed,
    )
    extra = {}
    if opts.model == "iap":
        from napari_cf_iap.models.iap_predictor import inverse_frequency_weights

        weights = inverse_frequency_weights(data.train_dataloader().dataset.vectors, vocabulary)
        extra["class_weights"] = {k: v.tolist() for k, v in weights.items()}
    module = build_module(opts.model, config, preset, vocabulary, **extra)
    module.rng_seed = seed  # per-step randomness from (seed, step, rank): exact resumes
    has_val = bool(data.val_rows)
    ckpt_dir = opts.out / "checkpoints"
    every = min(preset.val_every_steps or 200, 200)  # last.ckpt at least every 200 steps
    monitor, mode = ("val_dice", "max") if opts.model == "seg" else ("val_loss", "min")

    callbacks: list[Any] = []
    if preset.ema_decay:
        callbacks.append(EMAWeightAveraging(decay=preset.ema_decay))
    last_checkpoint = LastCheckpoint(ckpt_dir, every)
    callbacks.append(last_checkpoint)  # after the EMA callback (see its doc)
    best = None
    if has_val:
        best = ModelCheckpoint(
            dirpath=ckpt_dir, filename="best-{step}", monitor=monitor, mode=mode, save_top_k=1
        )
        callbacks.append(best)
        if preset.patience:
            callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=preset.patience))
    bundle_dir = opts.out / "bundle"
    preprocessing = {
        "size": preset.image_size,
        "low_pct": LOW_PCT,
        "high_pct": HIGH_PCT,
        "clip": False,
        "store_size": store.size,
        "drop_slices": store.meta.get("drop_slices"),
    }
    started = time.time()
    earlier_seconds = float(saved.get("train_seconds") or 0.0)  # invocations before a resume

    def provenance(step: int, weights: str) -> dict[str, Any]:
        return {
            "command": saved.get("command") or opts.command,
            "model": opts.model,
            "preset": preset.to_dict(),
            "steps": step,
            "init_from": saved.get("init_from"),
            "weights": weights,
            "train_seconds": round(earlier_seconds + time.time() - started, 1),
            "data": {
                "store": str(store.path.resolve()),
                "store_meta": {k: v for k, v in store.meta.items() if k != "skipped"},
                "train_slices": len(data.train_rows),
                "val_slices": len(data.val_rows),
                "with_augmentations": saved.get("with_augmentations", False),
                "split": {
                    k: v
                    for k, v in json.loads((store.path / "splits.json").read_text()).items()
                    if k != "patients"
                },
            },
        }

    def export(network: torch.nn.Module, step: int, weights: str, metrics: dict[str, Any]) -> Path:
        from .export import export_bundle

        return export_bundle(
            bundle_dir,
            opts.model,
            network,
            config,
            vocabulary,
            preprocessing=preprocessing,
            provenance=provenance(step, weights),
            metrics=metrics,
        )

    if preset.bundle_every_steps:
        callbacks.append(
            PeriodicBundle(
                preset.bundle_every_steps,
                lambda net, step: export(
                    net, step, "ema" if preset.ema_decay else "current", _metrics(trainer)
                ),
            )
        )
    callbacks.append(TQDMProgressBar(refresh_rate=1 if sys.stderr.isatty() else 50))

    trainer = pl.Trainer(
        accelerator=hw.accelerator,
        devices=_devices(hw.devices),
        strategy=hw.strategy,
        num_nodes=hw.num_nodes,
        precision=_precision(hw, preset),
        max_steps=preset.max_steps,
        max_epochs=preset.max_epochs
        if preset.max_epochs is not None
        else (-1 if preset.max_steps > 0 else None),
        max_time=max_time,
        val_check_interval=preset.val_every_steps if has_val and preset.val_every_steps else None,
        check_val_every_n_epoch=None if has_val and preset.val_every_steps else 1,
        limit_val_batches=(preset.val_batches or 1.0) if has_val else 0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=_logger(opts.log, opts.out),
        default_root_dir=opts.out,
        enable_checkpointing=True,
        log_every_n_steps=min(50, max(1, every // 2)),
        gradient_clip_val=1.0,
        enable_model_summary=False,
    )
    last_checkpoint.run_last(trainer)  # behind ModelCheckpoint: last.ckpt knows the best
    last = ckpt_dir / "last.ckpt"
    ckpt_path = last if opts.resume and last.is_file() else None
    step_before = 0
    from .export import CHECKPOINT_SAFE_GLOBALS, load_checkpoint

    if ckpt_path is None and saved.get("init_from"):  # a resume takes the checkpoint's weights
        start = start or load_start_bundle(saved["init_from"]["bundle"], opts.model)
        module.model.load_state_dict(start.model.state_dict())
    del start

    if ckpt_path is not None:  # mmap: the step without reading every tensor
        step_before = int(load_checkpoint(ckpt_path, mmap=True).get("global_step", 0))
    # tensors and plain data only: nothing pickled in last.ckpt runs (see export.load_checkpoint)
    try:
        with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    finally:  # also after Ctrl-C or an error: the time spent still counts
        total_seconds = None
        if trainer.is_global_zero:
            total_seconds = record_invocation(
                opts.out / "run.json",
                started=started,
                from_step=step_before,
                to_step=trainer.global_step,
                interrupted=trainer.interrupted,
                train_slices=len(data.train_rows),
                val_slices=len(data.val_rows),
            )

    summary: dict[str, Any] = {
        "model": opts.model,
        "resumed_from_step": step_before if ckpt_path else None,
        "global_step": trainer.global_step,
        "train_seconds": round(time.time() - started, 1),
        "train_seconds_total": total_seconds,
        "metrics": _metrics(trainer),
        "interrupted": trainer.interrupted,
    }
    if trainer.is_global_zero:
        network, weights = module.model, "ema" if preset.ema_decay else "last"
        if best is not None and best.best_model_path and not Path(best.best_model_path).is_file():
            warnings.warn(
                f"the best checkpoint {best.best_model_path} is gone (a run killed while it "
                "was replaced); the bundle holds the last weights instead",
                stacklevel=1,
            )
        elif best is not None and best.best_model_path:
            from .export import checkpoint_state

            state, info = checkpoint_state(best.best_model_path)
            network.load_state_dict(state)
            weights = (
                f"best {monitor}={float(best.best_model_score):.6g} at step {info['global_step']}"
            )
            summary["best_checkpoint"] = str(best.best_model_path)
            summary["metrics"][f"best_{monitor}"] = float(best.best_model_score)
        summary["weights"] = weights
        summary["bundle"] = str(
            export(network.cpu().eval(), trainer.global_step, weights, summary["metrics"])
        )
        atomic_write_text(
            opts.out / "summary.json", json.dumps(summary, indent=2, default=str), overwrite=True
        )
    return summary


def record_invocation(
    run_file: Path,
    *,
    started: float,
    from_step: int,
    to_step: int,
    interrupted: bool,
    train_slices: int,
    val_slices: int,
) -> float | None:
    """Add this invocation (wall time since ``started``, steps) to ``run.json``.

    ``train_seconds`` becomes the sum over all invocations of the run (a fresh start and its
    resumes); ``train_slices``/``val_slices`` are the counts the model trained and validated
    on. Returns the new total, or None (with a warning) if run.json cannot be updated.
    """
    entry = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "from_step": int(from_step),
        "to_step": int(to_step),
        "interrupted": bool(interrupted),
    }
    try:
        saved = json.loads(run_file.read_text())
        invocations = [*saved.get("invocations", []), entry]
        total = round(sum(float(i["seconds"]) for i in invocations), 1)
        saved.update(
            train_slices=int(train_slices),
            val_slices=int(val_slices),
            train_seconds=total,
            invocations=invocations,
        )
        atomic_write_text(run_file, json.dumps(saved, indent=2), overwrite=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"could not record the training time in {run_file}: {exc}", stacklevel=2)
        return None
    return total


def _metrics(trainer: Any) -> dict[str, float]:
    out = {}
    for key, value in trainer.callback_metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this process, for provenance."""
    return shlex.join(["cf-iap-train", *(argv if argv is not None else sys.argv[1:])])
