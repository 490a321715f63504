"""One fine-tuning batch: the random crops of long training clips, and its loss ``alpha_ser`` x
class-weighted cross-entropy with label smoothing + ``alpha_asr`` x CTC over the clip's transcript
(whole clips only: a crop's transcript is unknown) + ``alpha_prosody`` x masked MSE of frame pitch and
energy."""

from __future__ import annotations

import numpy as np

from ser.features.audio import AUDIO_RATE
from ser.finetune import prosody, text


def crops(X, index: np.ndarray, max_seconds: float, rng: np.random.Generator) -> tuple[list[np.ndarray], list[bool]]:
    """The clips' waves, each longer than ``max_seconds`` cut to a random span of it; and which are whole."""
    limit = int(max_seconds * AUDIO_RATE)
    waves, whole = [], []
    for i in index:
        wave = X.clip(i)[:, 0, 0]
        if len(wave) > limit:
            start = int(rng.integers(0, len(wave) - limit + 1))
            wave = wave[start:start + limit]
        waves.append(wave)
        whole.append(len(wave) == X.lengths[i])
    return waves, whole


class Losses:
    """The weighted sum of the task losses of one batch."""

    def __init__(self, s, class_weight, vocab: list[str] | None, sample_rate: int):
        import torch

        self.s, self.sample_rate = s, sample_rate
        self.ce = torch.nn.CrossEntropyLoss(weight=class_weight, label_smoothing=s.label_smoothing)
        self.vocab = text.Vocabulary(vocab) if vocab else None
        self.ctc = torch.nn.CTCLoss(blank=0)
        self.unalignable: set[int] = set()  # rows whose transcript needs more frames than their audio gives

    def __call__(self, out: dict, target, waves: list[np.ndarray], transcripts: list[str], rows=None):
        """The batch's loss; ``rows`` (the clips' row numbers) name the transcripts left out of CTC in
        ``unalignable``: too long for their audio's output frames, they have no alignment (infinite loss)."""
        import torch

        s = self.s
        loss = s.alpha_ser * self.ce(out["logits"].float(), target)
        if "ctc" in out:
            encoded = {b: self.vocab.encode(t) for b, t in enumerate(transcripts) if t}
            frames = out["lengths"].tolist()
            have = [b for b, seq in encoded.items() if text.Vocabulary.frames_needed(seq) <= frames[b]]
            self.unalignable.update(int(rows[b]) if rows is not None else b for b in encoded if b not in have)
            if have:
                ids = [encoded[b] for b in have]
                log_probs = out["ctc"][have].float().transpose(0, 1)  # (T, B, V)
                targets = torch.tensor([i for seq in ids for i in seq], device=log_probs.device)
                loss = loss + s.alpha_asr * self.ctc(log_probs, targets, out["lengths"][have],
                                                     torch.tensor([len(seq) for seq in ids], device=log_probs.device))
        if "prosody" in out:
            predicted = out["prosody"].float()
            goal = torch.zeros_like(predicted)
            mask = torch.zeros_like(predicted, dtype=torch.bool)
            for b, wave in enumerate(waves):
                values, counts = prosody.targets(wave, self.sample_rate)
                n = min(len(values), int(out["lengths"][b]))
                goal[b, :n] = torch.from_numpy(values[:n]).to(goal.device)
                mask[b, :n] = torch.from_numpy(counts[:n]).to(goal.device)
            if mask.any():
                loss = loss + s.alpha_prosody * ((predicted - goal)[mask] ** 2).mean()
        return loss
