"""Every shipped model's score on fixed generated face crops: the offline known answers.

``python -m scripts.known_answers`` prints them; ``--write`` stores them in
``tests/known_answers.json``, which ``tests/test_known_answers.py`` checks in the default suite (no
research data needed: the crops are made from scikit-image's public-domain photos). Run ``--write``
only when a member's weights change on purpose, and say so in the commit.

Scored eagerly in float32 (``Ensemble(precision="fp32", optimize=False)``), so the answers do not
depend on the CPU's instruction set or on the frozen-graph cache.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ANSWERS = Path(__file__).resolve().parents[1] / "tests" / "known_answers.json"
CROP = 256


def crops() -> tuple[np.ndarray, list[np.ndarray]]:
    """Four 256 px crops: the astronaut's face, the cameraman's, the astronaut's mirrored and a
    blurred copy of it; and for two-stream members each crop's "next frame", shifted by 3 px."""
    import cv2

    from detector.io.synthetic import astronaut_face, cameraman_face

    a, c = astronaut_face(CROP), cameraman_face(CROP)
    batch = np.stack([a, c, a[:, ::-1], cv2.GaussianBlur(a, (0, 0), 2.0)]).astype(np.uint8)
    shifted = [np.roll(x, 3, axis=1) for x in batch]
    return np.ascontiguousarray(batch), shifted


def answers() -> dict[str, list[float]]:
    from detector.models import list_models, read_manifest
    from detector.scoring.ensemble import Ensemble

    batch, nxt = crops()
    out = {}
    for name in list_models(available_only=True):
        ens = Ensemble([name], device="cpu", precision="fp32", optimize=False)
        p = ens.score(batch, np.zeros(len(batch), int), nxt if ens.needs_next_frames else None)
        out[name] = {
            "sha256": read_manifest(name)["sha256"],
            "p_fake": [round(float(x), 6) for x in p[:, 0]],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"store them in {ANSWERS.name}")
    args = parser.parse_args(argv)
    found = answers()
    print(json.dumps(found, indent=2))
    if args.write:
        ANSWERS.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
