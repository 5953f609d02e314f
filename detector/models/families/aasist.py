"""The voice member: AASIST on the clip's audio track (kind "audio"), in the same registry as the
face members.

The network and its conversion live with the rest of the voice analysis
(:mod:`detector.audio.aasist`); here it is declared like every other member, so that its weights
load through :func:`detector.models.registry.create_model` (safetensors, sha256 from the manifest,
strict) and its card comes from :func:`detector.models.registry.model_card`. What a member of this
kind is fed is a batch of 16 kHz waveform windows of ``input_size`` samples, not face crops; the
face ensemble refuses it (:class:`detector.scoring.ensemble.Ensemble`).
"""

from __future__ import annotations

import torch

from detector.audio import aasist
from detector.models.spec import ModelSpec


class AASISTMargin(aasist.AASIST):
    """AASIST whose one output is the spoof-minus-bona-fide logit margin, shape (N, 1): the
    project's "fake logit". Same parameters and names as :class:`~detector.audio.aasist.AASIST`,
    so the authors' checkpoint loads strictly."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        logits = super().forward(wave).float()  # the margin in float32, under autocast too
        spoof, bona_fide = 0, aasist.BONA_FIDE_INDEX
        return (logits[:, spoof] - logits[:, bona_fide]).unsqueeze(1)


SPECS: list[ModelSpec] = [
    ModelSpec(
        name="aasist",
        family="AASIST",
        factory=AASISTMargin,
        input_size=aasist.WINDOW_SAMPLES,
        kind="audio",
        sample_rate=aasist.SAMPLE_RATE,
        batch_size=1,  # windows per forward pass: 1 was fastest on the 2-core CPU
        description="AASIST speech anti-spoofing (ASVspoof 2019 LA weights of its authors), "
        "raw 16 kHz waveform, 4 s windows",
    )
]
