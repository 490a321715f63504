"""Per-epoch checkpoints of a fine-tuning fit, so an interrupted fold resumes where it stopped.

A fit's folder (named by a digest of everything that decides the fit: settings, encoder weights, the
training rows, labels and transcripts, the seed) holds ``epoch-N.safetensors`` (the weights after
epoch N), ``optimizer-N.pt`` (optimizer, scheduler and gradient scaler: tensors and numbers only,
read back with ``weights_only=True``), ``best-K.safetensors`` (the best epoch's weights) and
``progress.json``, written last, which names them: a crash between two writes leaves the previous
epoch's consistent set. A finished fit keeps only its best weights, and fitting again loads them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ser.artifacts import atomic_path, read_json, write_json
from ser.models.classifiers.torch_training import cpu_state

PROGRESS = "progress.json"


class Checkpoints:
    """The checkpoint folder of one fit."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def progress(self) -> dict | None:
        """What the last completed epoch recorded (epoch, history, early stopping, finished), or None."""
        path = self.folder / PROGRESS
        return read_json(path) if path.is_file() else None

    def save_epoch(self, epoch: int, module: torch.nn.Module, training: dict, progress: dict,
                   best: dict[str, torch.Tensor] | None) -> None:
        """Weights, optimizer state and progress after ``epoch`` (and the best weights when they changed)."""
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"epoch-{epoch}.safetensors") as tmp:
            save_file(cpu_state(module), str(tmp))
        with atomic_path(self.folder / f"optimizer-{epoch}.pt") as tmp:
            torch.save(training, tmp)
        if best is not None:
            with atomic_path(self.folder / f"best-{progress['best_epoch']}.safetensors") as tmp:
                save_file({k: v.cpu().contiguous() for k, v in best.items()}, str(tmp))
        write_json(self.folder / PROGRESS, {**progress, "epoch": epoch, "finished": False})
        self._keep(epoch, progress["best_epoch"], finished=False)

    def finish(self, progress: dict) -> None:
        """Mark the fit done; only the best weights stay."""
        write_json(self.folder / PROGRESS, {**progress, "finished": True})
        self._keep(progress["epoch"], progress["best_epoch"], finished=True)

    def load_epoch(self, progress: dict) -> tuple[dict, dict]:
        """(weights, optimizer/scheduler/scaler state) of the last completed epoch."""
        from safetensors.torch import load_file

        epoch = progress["epoch"]
        return (load_file(self.folder / f"epoch-{epoch}.safetensors"),
                torch.load(self.folder / f"optimizer-{epoch}.pt", weights_only=True))

    def load_best(self, progress: dict) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(self.folder / f"best-{progress['best_epoch']}.safetensors")

    def _keep(self, epoch: int, best_epoch: int, finished: bool) -> None:
        keep = {f"best-{best_epoch}.safetensors", PROGRESS}
        if not finished:
            keep |= {f"epoch-{epoch}.safetensors", f"optimizer-{epoch}.pt"}
        for path in self.folder.iterdir():
            if path.name not in keep and not path.name.startswith("."):
                path.unlink()
