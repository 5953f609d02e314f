"""``scan --engine ray`` on a private local Ray instance gives the lines the local engine gives.

Kept light: one actor, three tiny generated clips (a face, no face, not a video), two frames each,
the small ``mesoinception4_f2f`` member. About half a minute, mostly Ray starting and the actor
loading its models.
"""

from __future__ import annotations

import json

import pytest

from detector.batch import records as scan_records
from detector.batch.discover import discover
from detector.batch.scan import run_scan
from detector.batch.work import EngineOptions
from detector.io import synthetic
from tests.test_scan import MODEL, light_settings


@pytest.mark.slow
def test_ray_and_local_engines_give_the_same_results(tmp_path):
    from detector.pipeline import Analyzer

    clips = tmp_path / "clips"
    clips.mkdir()
    synthetic.astronaut_clip(clips / "face.mp4", seconds=2, fps=10, width=320, height=240)
    synthetic.blank_clip(clips / "blank.mp4", seconds=2, fps=10)
    (clips / "photo.mp4").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    found = discover([clips])
    settings = light_settings()

    run_scan(
        found,
        settings,
        tmp_path / "local",
        analyzer=Analyzer([MODEL], device="cpu"),
        progress=False,
    )
    result = run_scan(
        found,
        settings,
        tmp_path / "ray",
        engine=EngineOptions("ray", workers=1, cpus_per_worker=1),
        progress=False,
    )
    assert result.analysed == 3

    def read(out):
        return {
            r["path"]: r
            for r in map(json.loads, (out / scan_records.RESULTS).read_text().splitlines())
        }

    local, ray = read(tmp_path / "local"), read(tmp_path / "ray")
    assert sorted(local) == sorted(ray) == sorted(str(p) for p in found.clips)
    assert {r["status"] for r in ray.values()} == {"ok", "no_faces", "unreadable"}
    for path, r in ray.items():
        assert r["status"] == local[path]["status"]
        assert r["sha256"] == local[path]["sha256"]
        assert r["settings_fingerprint"] == local[path]["settings_fingerprint"]
        if r["verdict"] is None:
            assert local[path]["verdict"] is None and r["message"] == local[path]["message"]
        else:
            assert r["verdict"]["label"] == local[path]["verdict"]["label"]
            assert r["verdict"]["p_fake"] == pytest.approx(
                local[path]["verdict"]["p_fake"], abs=1e-5
            )
            for a, b in zip(r["frames"], local[path]["frames"], strict=True):
                assert [f["box_xyxy"] for f in a["faces"]] == [f["box_xyxy"] for f in b["faces"]]
    assert (tmp_path / "ray" / scan_records.SUMMARY).read_text().count("\n") == 4
    run = json.loads((tmp_path / "ray" / scan_records.MANIFEST).read_text())["runs"][-1]
    assert run["engine"]["engine"] == "ray" and "ray" in run["software"]


def test_missing_weights_stop_a_ray_scan_before_ray_starts(tmp_path):
    from dataclasses import replace

    from detector.errors import WeightsMissingError

    clip = synthetic.blank_clip(tmp_path / "blank.mp4", seconds=1, fps=10)
    settings = replace(light_settings(), models=("resnext50_lstm",))  # ships no weights
    with pytest.raises(WeightsMissingError, match="resnext50_lstm"):
        run_scan(
            discover([clip]),
            settings,
            tmp_path / "out",
            engine=EngineOptions("ray"),
            progress=False,
        )
    assert (tmp_path / "out" / scan_records.RESULTS).exists() is False
