"""One clean progress display for long work; what the libraries print goes to a log file.

- ``library_output_to(log_file)``: while the block runs, the progress bars of transformers, datasets and
  huggingface_hub (model loading, dataset preparation) are off, and the log records and Python warnings
  of the libraries are appended to ``log_file`` instead of the console.
- ``step_bar(trainer, description)``: the trainer's own progress bar, one line below the caller's, counting
  steps only; the log dicts it would print (``{'loss': ...}``) are in metrics.jsonl and TensorBoard.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LIBRARY_LOGGERS = ("transformers", "trl", "datasets", "accelerate", "huggingface_hub", "torch", "py.warnings")


@contextlib.contextmanager
def library_output_to(log_file: str | Path) -> Iterator[Path]:
    """Send the libraries' log records and warnings to ``log_file`` (appended) and switch their progress
    bars off for the ``with`` block; everything is restored afterwards."""
    import datasets
    import huggingface_hub.utils
    import transformers.utils.logging as transformers_logging

    from icpo.runfolder import open_for_append

    log_file = Path(log_file)
    handler = logging.StreamHandler(open_for_append(log_file))  # never through a symlink
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    saved = [(logger.handlers[:], logger.propagate) for logger in loggers]
    bars_were_on = (
        transformers_logging.is_progress_bar_enabled(),
        not datasets.utils.are_progress_bars_disabled(),
        not huggingface_hub.utils.are_progress_bars_disabled(),
    )
    logging.captureWarnings(True)
    for logger in loggers:
        logger.handlers, logger.propagate = [handler], False
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    try:
        yield log_file
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate
        logging.captureWarnings(False)
        handler.close()
        handler.stream.close()
        for was_on, enable in zip(
            bars_were_on,
            (
                transformers_logging.enable_progress_bar,
                datasets.enable_progress_bars,
                huggingface_hub.utils.enable_progress_bars,
            ),
            strict=True,
        ):
            if was_on:
                enable()


def step_bar(trainer: Any, description: str) -> None:
    """Replace the trainer's progress bar (or log printer) by a steps-only bar labelled ``description``,
    shown below the caller's bar (tqdm position 1) and removed when training ends."""
    from tqdm.auto import tqdm
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class StepBar(TrainerCallback):
        def __init__(self) -> None:
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = tqdm(total=state.max_steps, desc=description, unit="step", position=1, leave=False)
                self.bar.update(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepBar())
