"""Every registered model with shipped weights has a card, a manifest and measured metrics."""

from __future__ import annotations

import pytest

from detector.models import list_models, model_card


@pytest.mark.parametrize("name", list_models(available_only=True))
def test_shipped_model_card_says_what_it_is(name):
    """Its scores are pinned by tests/test_known_answers.py; here, what the card tells analysts."""
    card = model_card(name)
    assert card.available and card.sha256 and card.licence and card.trained_on


@pytest.mark.parametrize("name", list_models(available_only=True))
def test_shipped_model_manifest_records_how_it_was_made_and_measured(name):
    from detector.models import read_manifest

    man = read_manifest(name)
    m = man.get("metrics") or {}
    measured = [k for k in ("val", "test", "cv", "ffpp_c23_shared_frames", "crossval") if m.get(k)]
    assert measured, f"{name}: no measured metrics in its manifest"
    assert man.get("training_command") or man.get("conversion_command") or man.get("source")
    assert man.get("dtype") in (None, "float32", "float16", "int8")


def test_shipped_weights_stay_under_200_mib():
    """The detector members (about 140 MiB) and the face-identity embedder (22 MiB)."""
    from detector.settings import WEIGHTS_DIR

    total = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.safetensors"))
    assert total < 200 * 2**20, f"weights/ holds {total / 2**20:.0f} MiB"


def test_the_face_identity_embedder_ships_with_its_provenance():
    """Tracking needs it on a fresh clone: checked weights, a source archive, a licence, and
    how close the stored int8 weights stay to float32."""
    from detector.faces.identity import IDENTITY_WEIGHTS, read_identity_manifest
    from detector.models.weights import load_state_dict
    from detector.settings import WEIGHTS_DIR

    man = read_identity_manifest()
    assert man["name"] == IDENTITY_WEIGHTS and man["dtype"] == "int8"
    assert len(man["source"]["archive_sha256"]) == 64 and man["source"]["version"]
    assert man["licence"] and man["trained_on"] and man["data_terms"]
    assert man["fidelity"]["cosine_mean"] > 0.99
    state = load_state_dict(WEIGHTS_DIR / f"{IDENTITY_WEIGHTS}.safetensors", man["sha256"])
    assert state["last_linear.weight"].shape == (128, 1792)
    assert IDENTITY_WEIGHTS not in list_models()  # not a detector: not in the model picker
