"""Re-store trained members with int8 weights where validation AUC holds (keeps ``weights/`` small).

For each named member: load its shipped weights, build the same validation set its training used
(the manifest's folders and split file), measure frame AUC with int8-stored weights, and rewrite
``<name>.safetensors`` and the manifest only when the AUC is within 0.002 of the float32
validation AUC recorded at training time. Otherwise nothing changes. The manifest's validation,
bf16 and test metrics are then measured again with the int8-stored weights (the test split once
more, as at training time), so every number in it describes the file it sits beside.

    python -m scripts.store_int8 xception facenet_irv1 inception_resnet_v2 [--src DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from detector.evaluation.metrics import json_ready
from detector.models.weights import dequantize_state, load_state_dict, quantize_state
from detector.settings import WEIGHTS_DIR
from detector.training.config import TrainConfig, load_splits
from detector.training.predict import predict, set_metrics
from detector.training.storage import STORAGE_NOTES, save_weights
from detector.training.trainables import trainables


def _config(man: dict) -> TrainConfig:
    c = dict(man["config"])
    for k in ("real", "fake", "freeze", "teachers"):
        if k in c:
            c[k] = tuple(Path(x) if k in ("real", "fake") else x for x in c[k])
    for k in ("split_file", "out", "work_dir"):
        if c.get(k):
            c[k] = Path(c[k])
    known = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in c.items() if k in known})


def store(name: str, src: Path, out: Path) -> bool:
    man = json.loads((src / f"{name}.json").read_text("utf-8"))
    already = man.get("dtype") == "int8"
    t = trainables()[name]
    cfg = _config(man)
    data = load_splits(cfg, log=lambda m: None)
    val = data.val.subset(data.val_id)
    state = load_state_dict(src / f"{name}.safetensors", man["sha256"])
    net = t.factory()
    net.load_state_dict(dequantize_state(quantize_state(state)))
    net = net.to(memory_format=torch.channels_last)
    size = man["input_size"]
    auc = set_metrics(val, predict(net, val.images, t, size, torch.device("cpu")))["frame_auc"]
    ref = man["metrics"].get("fp32_val_auc", man["metrics"]["val"]["frame_auc"])
    print(f"{name}: val frame AUC float32 {ref:.4f}, int8 storage {auc:.4f}")
    if abs(auc - ref) > 0.002 or np.isnan(auc):
        print(f"{name}: int8 storage changes validation AUC by more than 0.002; left as it was")
        return False
    before = (src / f"{name}.safetensors").stat().st_size
    if already:  # stored as int8 before: only measure again
        sha = man["sha256"]
        if src != out:
            (out / f"{name}.safetensors").write_bytes((src / f"{name}.safetensors").read_bytes())
    else:
        sha = save_weights(state, out / f"{name}.safetensors", "int8")
    man["sha256"] = sha
    man["dtype"] = "int8"
    cpu = torch.device("cpu")
    man["metrics"]["int8_weights_val_auc"] = round(float(auc), 4)
    man["metrics"]["val"] = json_ready(set_metrics(val, predict(net, val.images, t, size, cpu)), 4)
    bf16 = predict(net, val.images, t, size, cpu, amp="bf16")
    man["metrics"]["bf16_val_auc"] = round(float(set_metrics(val, bf16)["frame_auc"]), 4)
    if len(data.test):
        test = predict(net, data.test.images, t, size, cpu)
        man["metrics"]["test"] = json_ready(set_metrics(data.test, test), 4)
    man["metrics"]["measured_with"] = "int8-stored weights (python -m scripts.store_int8)"
    note = "weights stored as " + STORAGE_NOTES["int8"]
    man["notes"] = man.get("notes", "").replace(
        "weights stored as float16 (validation AUC within 0.002 of float32)", note
    )
    if note not in man["notes"]:
        man["notes"] = man["notes"].rstrip(".") + ". " + note + "."
    man["storage_command"] = f"python -m scripts.store_int8 {name}"
    (out / f"{name}.json").write_text(json.dumps(man, indent=2) + "\n", "utf-8")
    after = (out / f"{name}.safetensors").stat().st_size
    print(f"{name}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB, sha256 {sha[:12]}")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--src", type=Path, default=WEIGHTS_DIR, help="where the weights are now")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    ok = [store(n, args.src, args.out) for n in args.names]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
