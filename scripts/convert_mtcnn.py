"""Convert facenet-pytorch's MTCNN weights (three pickled ``.pt`` state dicts) into one
``weights/mtcnn.safetensors`` with its manifest, so the analysis loads no pickle at all.

The sources are read with ``torch.load(weights_only=True)`` after their sha256 is checked against
:data:`SOURCES`; the output's sha256 goes into ``weights/mtcnn.json``, which
:mod:`detector.faces.mtcnn` checks on every load.

    python -m scripts.convert_mtcnn
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import torch
from safetensors.torch import save_file

from detector.faces.mtcnn import NETS, WEIGHTS_NAME, load_nets
from detector.io.files import sha256_file
from detector.settings import WEIGHTS_DIR

SOURCES = {  # facenet-pytorch 2.5.3, facenet_pytorch/data/<name>.pt
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}


def main() -> int:
    spec = find_spec("facenet_pytorch")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    state = {}
    for name, digest in SOURCES.items():
        path = data / f"{name}.pt"
        if sha256_file(path) != digest:
            raise SystemExit(f"{path} is not the file this conversion was written for")
        net = NETS[name]()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        state.update({f"{name}.{k}": v.contiguous() for k, v in net.state_dict().items()})
    out = WEIGHTS_DIR / f"{WEIGHTS_NAME}.safetensors"
    save_file(state, str(out))
    manifest = {
        "name": WEIGHTS_NAME,
        "what": "MTCNN face detector (P-, R- and O-Net; Zhang et al. 2016) as facenet-pytorch "
        "ships it: not a deepfake detector, not in the model registry",
        "sha256": sha256_file(out),
        "source": {
            "package": "facenet-pytorch",
            "version": version("facenet-pytorch"),
            "files": {f"facenet_pytorch/data/{n}.pt": d for n, d in SOURCES.items()},
        },
        "licence": "MIT (facenet-pytorch, Tim Esler; weights ported from David Sandberg's "
        "FaceNet, MIT, from the MTCNN authors' release)",
        "conversion_command": "python -m scripts.convert_mtcnn",
    }
    (WEIGHTS_DIR / f"{WEIGHTS_NAME}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    load_nets()  # the new file loads and checks
    print(f"wrote {out} ({manifest['sha256'][:12]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
