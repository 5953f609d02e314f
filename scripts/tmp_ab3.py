import time
import numpy as np
from pathlib import Path
from detector.io import synthetic
from detector.pipeline import Analyzer, ExtractionSettings
from detector.scoring.device import cpu_path

clip = synthetic.astronaut_clip(Path("/tmp/ov/720.mp4"), seconds=10, width=1280, height=720, face_size=220)
a = Analyzer(spare_children=True).load()
a.analyze(clip, ExtractionSettings())
w = a._face_workers
res = {"workers": [], "calling thread": []}; fs = {k: [] for k in res}; boxes = {}
for r in range(9):
    for mode in res:
        a.detector._mtcnn.workers = a.embedder.workers = (w if mode == "workers" else None)
        time.sleep(1.0)
        t = time.perf_counter()
        an = a.analyze(clip, ExtractionSettings())
        res[mode].append(time.perf_counter() - t)
        fs[mode].append(an.timings_s["faces_s"])
        boxes[mode] = np.array([f.box_xyxy for f in an.faces])
print("path", cpu_path())
for m in res:
    print(f"{m}: end to end median {np.median(res[m]):.3f} s ({min(res[m]):.3f}-{max(res[m]):.3f}), faces median {np.median(fs[m]):.3f} s")
print("max box difference, px:", np.abs(boxes["workers"] - boxes["calling thread"]).max())
