"""The training loop: stage A (a VQGAN f4 trained here, or a pretrained autoencoder loaded with
`load_stage_a`), then the encoder and stage B jointly under the config's loss terms.

The recipe is "sample what you can't compress": the EfficientNet latent is quantised (with the
same rounding the bitstream uses, or its uniform-noise proxy) and dropped to zeros with a small
probability for classifier-free guidance; stage B learns to generate the frozen stage A latent
conditioned on it. The models' forward passes live in `train.model`, the loss terms in
`neurcodec.losses`, the data in `train.data`; this loop owns the optimizers, EMA, precision,
gradient accumulation, checkpoints and — under torchrun — the processes: DDP on the global batch,
rank 0 alone logs, checkpoints and exports. Every random draw of a step is a function of (seed,
step, sample), so a resumed run continues exactly and N processes train what one would.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from neurcodec import fileio
from neurcodec.diffusion import build_gdf
from neurcodec.errors import InputError, UsageError
from neurcodec.losses import weighted_loss
from neurcodec.models.configs import config_from_dict
from neurcodec.contracts import TrainableStageA
from neurcodec.models.discriminator import PatchDiscriminator
from neurcodec.pipeline import resolve_autocast
from neurcodec.train.config import PhaseConfig, TrainConfig
from neurcodec.train.data import CropDataset, GlobalBatches, find_images, load_images, repeats_for
from neurcodec.train.distributed import World, barrier, global_batch_norm, mean_over_world
from neurcodec.train.draws import Draws
from neurcodec.train.model import JointModel, StageAModel

STAGE_A_STREAM, JOINT_STREAM = 1, 2  # separate random streams for the two phases


def lr_at(step: int, phase: PhaseConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < phase.warmup:
        return phase.lr * (step + 1) / phase.warmup
    progress = min(1.0, (step - phase.warmup) / max(1, phase.steps - phase.warmup))
    return phase.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    # One multi-tensor call instead of a kernel per parameter (hundreds of small tensors).
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _adamw(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.AdamW:  # type: ignore[no-untyped-def]
    """AdamW with the fused kernel where PyTorch has one (one pass over all parameters)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=0.0, fused=fused or None)


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@contextmanager
def stop_signals() -> Iterator[list[int]]:
    """SIGINT / SIGTERM ask the loop to stop after the step in progress (a checkpoint of a
    half-applied step would not resume exactly); a second one interrupts at once. Yields the
    signals received."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield received
        return
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        data_dir: Path,
        out_dir: Path,
        *,
        device: str = "cpu",
        seed: int = 0,
        log: Callable[[str], None] = print,
        world: World | None = None,
    ) -> None:
        self.config, self.data_dir, self.out_dir = config, Path(data_dir), Path(out_dir)
        self.device = torch.device(device)
        self.world = world or World()
        self.log = log if self.world.main else (lambda _: None)
        self.seed = seed
        self._check_split()
        torch.manual_seed(seed)  # initial weights: the same in every process
        self.stage_a = config.stage_a.build().to(self.device)
        self.encoder = config.encoder.build().to(self.device)
        self.stage_b = config.stage_b.build().to(self.device)
        self._check_stage_a()
        if self.world.distributed:  # batch statistics of the global batch, as one process has them
            global_batch_norm(self.stage_a)
            global_batch_norm(self.encoder)
        self.ema_encoder = config.encoder.build().to(self.device).requires_grad_(False)
        self.ema_stage_b = config.stage_b.build().to(self.device).requires_grad_(False)
        self.ema_encoder.load_state_dict(self.encoder.state_dict())
        self.ema_stage_b.load_state_dict(self.stage_b.state_dict())
        self.gdf = build_gdf(config.diffusion)
        self.opt_a = _adamw(self.stage_a.parameters(), config.stage_a_phase.lr, (0.9, 0.99), self.device)
        params = list(self.encoder.parameters()) + list(self.stage_b.parameters())
        self.opt_b = _adamw(params, config.joint_phase.lr, (0.9, 0.99), self.device)
        self.disc: PatchDiscriminator | None = None
        if config.weight("adversarial") > 0:
            self.disc = PatchDiscriminator(config.disc_widths).to(self.device)
            self.opt_d = _adamw(self.disc.parameters(), config.disc_lr, (0.5, 0.9), self.device)
        self.phase = "stage_a"
        self.step = 0
        self.elapsed = 0.0  # seconds of training, summed over resumed runs
        self.prior_joint_steps = 0  # joint steps of the model given to --init
        self.latent_scale: float | None = None
        self.stage_a_source: str | None = None  # where pretrained stage A weights came from
        self.images: list[Tensor] | None = None
        self.latent_cache: list[Tensor] | None = None
        self.bf16 = self._resolve_bf16()
        if config.channels_last:
            for module in (self.stage_a, self.encoder, self.stage_b, self.ema_encoder, self.ema_stage_b, self.disc):
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        self.joint_model = JointModel(config, self.stage_a, self.encoder, self.stage_b, self.gdf, self.autocast)
        self.stage_a_model = StageAModel(config, self.stage_a)
        self._wrapped: dict[str, nn.Module] = {}
        self._batches: dict[str, GlobalBatches] = {}

    def _check_stage_a(self) -> None:
        if self.config.stage_a_phase.steps and not isinstance(self.stage_a, TrainableStageA):
            kind = type(self.config.stage_a).__name__
            raise UsageError(f"training config {self.config.name!r}: a {kind} stage A is pretrained, not trained here; set stage_a_phase.steps to 0 and give --stage-a")

    def _check_split(self) -> None:
        """Each process × micro-batch needs an equal share of the global batch (and of its one-step samples)."""
        cfg, shares = self.config, self.world.size * self.config.grad_accumulation
        counts = {"joint_phase.batch_size": cfg.joint_phase.batch_size}
        if cfg.stage_a_phase.steps:
            counts["stage_a_phase.batch_size"] = cfg.stage_a_phase.batch_size
        if cfg.one_step:
            counts["one_step_batch"] = cfg.one_step_batch
        for key, count in counts.items():
            if count % shares:
                raise UsageError(
                    f"training config {cfg.name!r}: {key} = {count} does not split into {self.world.size} process(es) × "
                    f"{cfg.grad_accumulation} micro-batch(es); choose a multiple of {shares}"
                )

    @property
    def downscale(self) -> int:
        return self.stage_a.downscale

    @property
    def pretrained_stage_a(self) -> bool:
        """A stage A that is not trained here (its phase has no steps): it must be loaded."""
        return self.config.stage_a_phase.steps == 0

    def autocast(self):  # type: ignore[no-untyped-def]
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _resolve_bf16(self) -> bool:
        """The config's bf16 autocast where the hardware does bf16 natively (as decoding does):
        on a CPU without AVX-512-bf16 or AMX it emulates bf16 and a joint step measured 14×
        slower than fp32 (77 s against 5.5 s, AMD EPYC with AVX2 only)."""
        if self.config.autocast not in (None, "bfloat16"):
            raise UsageError(f"training config {self.config.name!r}: autocast must be \"bfloat16\" or null, got {self.config.autocast!r}")
        if self.config.autocast is None:
            return False
        if resolve_autocast(None, "bfloat16", self.device, torch.float32) == torch.bfloat16:
            return True
        self.log(f"bf16 autocast off: {self.device.type} has no native bf16 here; training in float32")
        return False

    def load_stage_a(self, path: Path) -> None:
        """Pretrained stage A weights: a folder with a TAESD pair (`*_encoder.pth`,
        `*_decoder.pth`) or a model exported by `--export` (its `stage_a.` tensors)."""
        path = Path(path)
        if path.is_dir():
            state = {}
            for part in ("encoder", "decoder"):
                found = sorted(path.glob(f"*_{part}.pth"))
                if len(found) != 1:
                    raise InputError(f"--stage-a: expected one *_{part}.pth in {path}, found {len(found)}")
                tensors = torch.load(found[0], map_location="cpu", weights_only=True)
                state.update({f"{part}.{k}": v for k, v in tensors.items()})
        elif path.suffix == ".safetensors" and path.is_file():
            from safetensors.torch import load_file

            state = {k[len("stage_a."):]: v for k, v in load_file(str(path)).items() if k.startswith("stage_a.")}
        else:
            raise InputError(f"--stage-a: {path} is neither a folder of .pth files nor a .safetensors model")
        try:
            self.stage_a.load_state_dict({k: v.float() for k, v in state.items()})
        except RuntimeError as exc:
            raise InputError(f"--stage-a: {path} does not fit stage A of config {self.config.name!r}: {str(exc).splitlines()[0]}") from None
        self.stage_a_source = str(path)

    # ---------------------------------------------------------------- checkpointing
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": json.loads(json.dumps(self.config.to_dict())),  # plain types: loads with weights_only
            "phase": self.phase,
            "step": self.step,
            "seed": self.seed,  # with the step, all a resumed run needs to draw what comes next
            "elapsed": self.elapsed,
            "prior_joint_steps": self.prior_joint_steps,
            "latent_scale": self.latent_scale,
            "stage_a_source": self.stage_a_source,
            "stage_a": self.stage_a.state_dict(),
            "encoder": self.encoder.state_dict(),
            "stage_b": self.stage_b.state_dict(),
            "ema_encoder": self.ema_encoder.state_dict(),
            "ema_stage_b": self.ema_stage_b.state_dict(),
            "opt_a": self.opt_a.state_dict(),
            "opt_b": self.opt_b.state_dict(),
            **({"disc": self.disc.state_dict(), "opt_d": self.opt_d.state_dict()} if self.disc is not None else {}),
        }

    def save_checkpoint(self) -> None:
        """Rank 0 writes (atomically); the other processes hold the same state."""
        if not self.world.main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        fileio.atomic_write(self.checkpoint_path, lambda f: torch.save(state, f))

    def load_checkpoint(self) -> None:
        from neurcodec.models.effnet import EffNetStage

        # weights_only: a planted checkpoint runs no code. EffNetStage: in older checkpoints' configs.
        with torch.serialization.safe_globals([EffNetStage]):
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        self.stage_a_source = state.get("stage_a_source")
        for name in ("stage_a", "encoder", "stage_b", "ema_encoder", "ema_stage_b"):
            getattr(self, name).load_state_dict(state[name])
        self.opt_a.load_state_dict(state["opt_a"])
        self.opt_b.load_state_dict(state["opt_b"])
        if self.disc is not None and "disc" in state:  # a run that adds the critic starts it fresh
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.phase, self.step, self.elapsed = state["phase"], state["step"], state["elapsed"]
        self.seed = state.get("seed", self.seed)  # checkpoints before the stateless draws kept none
        self.latent_scale = state["latent_scale"]
        self.prior_joint_steps = state.get("prior_joint_steps", 0)
        if self.latent_scale is not None:
            self.stage_a.scale_factor = self.latent_scale

    def init_from_bundle(self, path: Path) -> dict[str, Any]:
        """Start from an exported model: its stage A (frozen, with its latent scale) and its EMA
        encoder + stage B, then train the joint phase from step 0 (a continuation or fine-tune).
        The bundle's recorded training time is carried over; its record is returned."""
        from safetensors.torch import load_file

        from neurcodec.zoo import bundle_metadata

        if not path.is_file():
            raise InputError(f"--init: no such model file {path}")
        meta = bundle_metadata(path)
        if not meta or "stage_a" not in meta:
            raise InputError(f"--init: {path} is not a model exported by `neurcodec train --export`")
        donor_b = config_from_dict(meta["stage_b"])
        # A model can start a direct head, or grow refine blocks on its head: both start as a
        # no-op (a zero head, identity blocks), so the continued model begins as the same model.
        wanted = self.config.stage_b
        adds_head = not donor_b.c_direct and bool(wanted.c_direct)
        grows_head = donor_b.c_direct == wanted.c_direct and donor_b.direct_refine < wanted.direct_refine
        if adds_head or grows_head:
            donor_b = replace(donor_b, c_direct=wanted.c_direct, direct_refine=wanted.direct_refine)
        if donor_b != wanted or config_from_dict(meta["encoder"]) != self.config.encoder:
            raise UsageError(f"--init: {path} was trained with other model shapes than config {self.config.name!r}")
        tensors = load_file(str(path))
        if adds_head or grows_head:
            fresh = {f"stage_b.direct_head.{k}": v for k, v in self.stage_b.direct_head.state_dict().items()}
            tensors = {**fresh, **tensors} if grows_head else {**tensors, **fresh}
        for prefix, modules in (
            ("stage_a.", (self.stage_a,)),
            ("encoder.", (self.encoder, self.ema_encoder)),
            ("stage_b.", (self.stage_b, self.ema_stage_b)),
        ):
            state = {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
            for module in modules:
                module.load_state_dict(state)
        self.latent_scale = float(meta["stage_a"]["scale_factor"])
        self.stage_a.scale_factor = self.latent_scale
        self.stage_a_source = str(path)
        self.phase, self.step = "joint", 0
        record = meta.get("training", {})
        self.elapsed = float(record.get("train_seconds", 0.0))
        self.prior_joint_steps = int(record.get("joint_steps", 0))
        return record

    # ---------------------------------------------------------------- phases
    def _load_data(self) -> None:
        if self.images is None:
            crop = max(self.config.stage_a_phase.crop, self.config.joint_phase.crop, self.config.one_step_crop)
            paths = find_images(self.data_dir)
            self.log(f"loading {len(paths)} training images from {self.data_dir}")
            self.images = load_images(paths, crop)

    def _model(self, name: str) -> nn.Module:
        """The phase's model, wrapped in DDP under torchrun (built once, after any checkpoint
        or --init has loaded: DDP starts every process from rank 0's weights)."""
        if name not in self._wrapped:
            model = self.joint_model if name == "joint" else self.stage_a_model
            if self.world.distributed:
                ids = [self.device.index] if self.device.type == "cuda" else None
                model = DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)  # buffers: EMA'd and saved by rank 0 alike
            self._wrapped[name] = model
        return self._wrapped[name]

    def batches(self, name: str) -> GlobalBatches:
        if name not in self._batches:
            assert self.images is not None
            cfg = self.config
            phase = cfg.joint_phase if name == "joint" else cfg.stage_a_phase
            own = cfg.one_step_crop if name == "joint" and cfg.one_step and cfg.one_step_crop not in (0, phase.crop) else 0
            dataset = CropDataset(
                self.images, phase.crop, self.downscale, self.seed * 2 + (name == "joint"),
                latents=self.latent_cache if name == "joint" else None, own_crop=own, repeats=repeats_for(len(self.images), phase.batch_size),
            )
            self._batches[name] = GlobalBatches(
                dataset, phase.batch_size, world=self.world.size, rank=self.world.rank, accumulation=cfg.grad_accumulation, seed=self.seed
            )
        return self._batches[name]

    def _draws(self, phase: PhaseConfig, rows: list[int], stream: int) -> Draws:
        # A continuation (--init) draws on from the steps its model already had.
        step = self.step + (self.prior_joint_steps if stream == JOINT_STREAM else 0)
        return Draws(self.seed, step, phase.batch_size, rows, self.device, stream)

    def _no_sync(self, model: nn.Module, last: bool):  # type: ignore[no-untyped-def]
        """DDP all-reduces gradients on the last micro-batch only."""
        return model.no_sync() if isinstance(model, DistributedDataParallel) and not last else nullcontext()

    def _clip_and_step(self, optimizer: torch.optim.Optimizer) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()

    def stage_a_step(self) -> dict[str, float]:
        phase = self.config.stage_a_phase
        for group in self.opt_a.param_groups:
            group["lr"] = lr_at(self.step, phase)
        self.stage_a.train()
        model = self._model("stage_a")
        micro = self.batches("stage_a").micro_batches(self.step)
        self.opt_a.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for m, (batch, rows) in enumerate(micro):
            with self._no_sync(model, m == len(micro) - 1):
                out = model(_to(batch, self.device), self._draws(phase, rows, STAGE_A_STREAM))
                l1, l2 = F.l1_loss(out["recon"], out["real"]), F.mse_loss(out["recon"], out["real"])
                loss = l1 + l2 + out["vq_loss"]
                (loss / len(micro)).backward()
            for key, value in (("loss", loss.item()), ("l1", l1.item()), ("mse", l2.item())):
                totals[key] = totals.get(key, 0.0) + value / len(micro)
        self._clip_and_step(self.opt_a)
        stats = mean_over_world(totals, self.device)
        stats["psnr"] = -10 * math.log10(max(stats.pop("mse"), 1e-10))
        return stats

    @torch.no_grad()
    def finish_stage_a(self) -> None:
        """Set stage A's latent scale so the diffusion target has unit std (it is frozen from here on)."""
        self.stage_a.eval()
        assert self.images is not None
        d = self.downscale
        side = lambda n: min(256, n) // d * d  # noqa: E731 - stage A takes multiples of its downscale
        sample = [img[:, : side(img.shape[1]), : side(img.shape[2])].float()[None] / 255.0 for img in self.images[:64]]
        raws = torch.cat([self.stage_a.encode_raw(x.to(self.device)).flatten() for x in sample])
        self.latent_scale = float(raws.std())
        self.stage_a.scale_factor = self.latent_scale
        self.log(f"stage A done: latent scale {self.latent_scale:.4f}")

    @torch.no_grad()
    def build_latent_cache(self) -> None:
        """Stage A latents of every whole training image, computed once (stage A is frozen).
        Under torchrun rank 0 computes them and the others map its file (one copy in memory)."""
        assert self.images is not None
        # Every joint run (fresh, resumed or --init) starts here: stage A trains no further.
        self.stage_a.eval().requires_grad_(False)
        self.opt_a.zero_grad(set_to_none=True)
        # A run folder keeps them on disk: a resumed run (a new process) skips recomputing.
        key = {"stage_a": self.stage_a_source, "scale": self.latent_scale, "sizes": [list(img.shape) for img in self.images]}
        path = self.out_dir / "latent_cache.pt"
        keep = self.stage_a_source is not None or self.world.distributed  # a stage A trained here changes with every run
        if self.world.main and not self._load_cache(path, key):
            self.log("caching stage A latents of the training images")
            cache = []
            d = self.downscale
            for img in self.images:
                h, w = img.shape[1] // d * d, img.shape[2] // d * d  # stage A needs multiples of d
                x = img[:, :h, :w].float()[None].to(self.device) / 255.0
                with self.autocast():  # targets in bf16 precision, where training runs in it anyway
                    cache.append(self.stage_a.encode(self._layout(x))[0][0].float().contiguous().cpu())
            self.latent_cache = cache
            if keep:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                fileio.atomic_write(path, lambda f: torch.save({"key": key, "latents": cache}, f))
        barrier()
        if not self.world.main and not self._load_cache(path, key):
            raise RuntimeError(f"rank {self.world.rank}: rank 0's latent cache {path} is missing or stale")

    def _load_cache(self, path: Path, key: dict[str, Any]) -> bool:
        if not path.is_file():
            return False
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if saved.get("key") != key:
            return False
        self.latent_cache = saved["latents"]
        return True

    def joint_step(self) -> dict[str, float]:
        cfg, phase = self.config, self.config.joint_phase
        assert self.latent_cache is not None
        for group in self.opt_b.param_groups:
            group["lr"] = lr_at(self.step, phase)
        self.encoder.train()
        self.stage_b.train()
        model = self._model("joint")
        adversarial = self.disc is not None and self.step >= cfg.adversarial_start
        micro = self.batches("joint").micro_batches(self.step)
        self.opt_b.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        decoded, real = [], []
        for m, (batch, rows) in enumerate(micro):
            with self._no_sync(model, m == len(micro) - 1):
                out = model(_to(batch, self.device), self._draws(phase, rows, JOINT_STREAM))
                if adversarial and "decoded" in out:
                    assert self.disc is not None
                    self.disc.requires_grad_(False)  # the generator's loss trains the model, not the critic
                    with self.autocast():
                        out["fake_score"] = self.disc(self._layout(out["decoded"]))
                    self.disc.requires_grad_(True)
                loss, stats = weighted_loss(out, cfg.losses)
                (loss / len(micro)).backward()
            if "decoded" in out:
                decoded.append(out["decoded"].detach())
                real.append(out["real"])
            for key, value in {"loss": loss.item(), **stats}.items():
                totals[key] = totals.get(key, 0.0) + value / len(micro)
        self._clip_and_step(self.opt_b)
        if self.disc is not None and decoded:
            totals["d_loss"] = self.critic_step(torch.cat(real), torch.cat(decoded))
        decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
        ema_update(self.ema_encoder, self.encoder, decay)
        ema_update(self.ema_stage_b, self.stage_b, decay)
        return mean_over_world(totals, self.device)

    def critic_step(self, real: Tensor, decoded: Tensor) -> float:
        """One hinge-loss step of the patch critic: real crops above +1, decoded below −1. Its
        gradients are averaged over the processes by hand: the critic is frozen inside the
        model's loss (above), which a DDP wrapper's hooks do not expect."""
        assert self.disc is not None
        with self.autocast():
            scores = self.disc(self._layout(torch.cat([real, decoded]))).float()  # per-sample norms: one pass for both
        real_scores, fake_scores = scores[: real.shape[0]], scores[real.shape[0] :]
        loss = F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        if self.world.distributed:
            for p in self.disc.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world.size
        self.opt_d.step()
        return loss.item()

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def _stop_now(self, deadline: float | None, signalled: list[int]) -> bool:
        """Past the deadline or signalled on any process: all stop at the same step."""
        late = bool(signalled) or (deadline is not None and time.monotonic() >= deadline)
        if not self.world.distributed:
            return late
        flag = torch.tensor([float(late)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def run(self, *, max_minutes: float | None = None, progress: Callable[[str, int, int, dict], None] | None = None) -> bool:
        """Train until both phases are done or `max_minutes` pass; returns True when finished."""
        cfg = self.config
        if self.phase != "done" and self.pretrained_stage_a and self.stage_a_source is None:
            raise UsageError(f"config {cfg.name!r} uses a pretrained stage A: give its weights with --stage-a")
        self._load_data()
        assert self.images is not None
        deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
        last_ckpt = time.monotonic()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.out_dir / "log.jsonl").open("a") if self.world.main else None
        with stop_signals() as signalled:
            try:
                while True:
                    if self.phase == "stage_a" and self.step >= cfg.stage_a_phase.steps:
                        self.finish_stage_a()
                        self.phase, self.step = "joint", 0
                        self.save_checkpoint()
                    if self.phase == "joint" and self.step >= cfg.joint_phase.steps:
                        self.phase = "done"
                        self.save_checkpoint()
                    if self.phase == "done":
                        return True
                    if self._stop_now(deadline, signalled):
                        self.save_checkpoint()
                        if signalled:  # stopped after a whole step: the checkpoint resumes exactly
                            raise KeyboardInterrupt if signalled[0] == signal.SIGINT else SystemExit(128 + signalled[0])
                        return False
                    phase_cfg = cfg.stage_a_phase if self.phase == "stage_a" else cfg.joint_phase
                    if self.phase == "joint" and self.latent_cache is None:
                        self.build_latent_cache()
                    t0 = time.monotonic()
                    stats = self.stage_a_step() if self.phase == "stage_a" else self.joint_step()
                    self.elapsed += time.monotonic() - t0
                    self.step += 1
                    if log_file is not None and (self.step % 25 == 0 or self.step == phase_cfg.steps):
                        log_file.write(json.dumps({"phase": self.phase, "step": self.step, "elapsed": round(self.elapsed, 1), **stats}) + "\n")
                        log_file.flush()
                    if progress is not None and self.world.main:
                        progress(self.phase, self.step, phase_cfg.steps, stats)
                    if time.monotonic() - last_ckpt >= 60 * cfg.checkpoint_minutes:
                        self.save_checkpoint()
                        last_ckpt = time.monotonic()
            except (KeyboardInterrupt, SystemExit):  # from `progress`, the stop above, or a second signal
                if len(signalled) < 2:  # at a step boundary: the checkpoint resumes exactly
                    self.save_checkpoint()
                raise
            finally:
                if log_file is not None:
                    log_file.close()

    # ---------------------------------------------------------------- export
    def export(self, path: Path, *, dtype: torch.dtype = torch.float16, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the shippable model: one safetensors file (EMA weights, stage prefixes) + its JSON."""
        from safetensors.torch import save

        if self.latent_scale is None:
            raise UsageError("the model has not finished stage A training; nothing to export")
        tensors: dict[str, Tensor] = {}
        for prefix, module in (("stage_a.", self.stage_a), ("encoder.", self.ema_encoder), ("stage_b.", self.ema_stage_b)):
            for key, value in module.state_dict().items():
                value = value.detach().cpu().contiguous()  # channels_last training: pack to plain layout
                tensors[prefix + key] = value.to(dtype) if value.is_floating_point() else value
        tensors["clip_uncond"] = torch.zeros(1, 1, self.config.stage_b.c_clip, dtype=dtype)
        stage_a = replace(self.config.stage_a, scale_factor=self.latent_scale)
        joint = self.step if self.phase in ("joint", "done") else 0  # a finished run stops at its own schedule's end
        spec = {
            "stage_a": stage_a.to_dict(),
            "encoder": self.config.encoder.to_dict(),
            "stage_b": self.config.stage_b.to_dict(),
            "effnet_factor": self.config.effnet_factor,
            "diffusion": asdict(self.config.diffusion),
            "training": {
                "config": self.config.name,
                "phase": self.phase,
                "stage_a_steps": self.config.stage_a_phase.steps if self.phase != "stage_a" else self.step,
                **({"stage_a_source": self.stage_a_source} if self.pretrained_stage_a else {}),
                "joint_steps": self.prior_joint_steps + joint,
                "train_seconds": round(self.elapsed),
                **(record or {}),
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write(path, save(tensors, metadata={"neurcodec": json.dumps(spec)}))
        return spec

