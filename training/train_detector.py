"""Train the shipped street detector on synthetic scenes and export it to ONNX (YOLOv8 layout).

    python -m training.train_detector [--steps N] [--out sensorpipe/models/] [--quantize]
        [--fine-persons]

PyTorch is used here only; the edge runs the exported ONNX file with onnxruntime. The network
is the project's own: a small conv backbone with two anchor-free heads (strides 8 and 16),
box distances (left, top, right, bottom) from each cell centre and one sigmoid score per class.
The exported graph decodes boxes itself and outputs `[1, 4 + nc, N]` — centre x, centre y,
width, height in input pixels, then class scores — which is the YOLOv8/YOLO11 export layout,
so the edge decoder treats it like any such model. `--fine-persons` adds a third head at
stride 4 for small people only (people walking side by side at the far kerb fall into one
stride-8 cell); the shipped model is trained with it (`make model`).

Training data are frames rendered from `firmware_sim.scenes` with seeds below 1000, a quarter
of the streets plain and the rest under random conditions (perspective, crowds, parked
vehicles, shadows, night, rain, motion blur, JPEG; see `conditions_for`); evaluation uses
seeds from 1000 up. Everything is seeded: the same command gives the same data and, on
the same machine and library versions, the same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sensorpipe.firmware_sim.conditions import CONDITIONS
from sensorpipe.firmware_sim.scenes import DETECTOR_CLASSES, HEIGHT, Scene

INPUT_H, INPUT_W = 192, 320  # multiples of 32; the 320x180 camera frame is letterboxed into it
PAD_TOP = (INPUT_H - HEIGHT) // 2
LEVEL_SPLIT = 44.0  # boxes whose longer side is at most this go to stride 8, others to 16
# --fine-persons: people whose longer side is at most this go to a stride-4 head of their own
# (far pedestrians side by side share a stride-8 cell, which predicts only one of them).
FINE_SPLIT = 24.0
FINE_CLASS = DETECTOR_CLASSES.index("person")
NC = len(DETECTOR_CLASSES)
TRAIN_SEEDS = range(0, 120)


class ConvBnAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(inplace=True),
        )


class StreetDetector(nn.Module):
    """Raw outputs per level: [B, 4 + NC, H, W] (ltrb logits, then class logits)."""

    def __init__(self, nc: int = NC, *, fine_persons: bool = False) -> None:
        super().__init__()
        self.fine_persons = fine_persons
        self.stem = nn.Sequential(ConvBnAct(3, 16, 2), ConvBnAct(16, 32, 2), ConvBnAct(32, 32))
        self.p3 = nn.Sequential(ConvBnAct(32, 48, 2), ConvBnAct(48, 48))
        self.p4 = nn.Sequential(ConvBnAct(48, 96, 2), ConvBnAct(96, 96))
        self.lateral = nn.Conv2d(96, 48, 1)
        heads = []
        if fine_persons:  # created here, before the other heads: the order sets their weights
            self.lateral2 = nn.Conv2d(48, 32, 1)
            self.head2 = nn.Sequential(ConvBnAct(32, 32), nn.Conv2d(32, 4 + nc, 1))
            heads.append(self.head2)
        self.head3 = nn.Sequential(ConvBnAct(48, 48), nn.Conv2d(48, 4 + nc, 1))
        self.head4 = nn.Sequential(ConvBnAct(96, 96), nn.Conv2d(96, 4 + nc, 1))
        heads += [self.head3, self.head4]
        for head in heads:
            conv = head[-1]
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            nn.init.constant_(conv.bias[4:], -4.6)  # start at p = 0.01: few false positives

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p2 = self.stem(x)
        p3 = self.p3(p2)
        p4 = self.p4(p3)
        p3 = p3 + F.interpolate(self.lateral(p4), scale_factor=2.0, mode="nearest")
        if not self.fine_persons:
            return [self.head3(p3), self.head4(p4)]
        p2 = p2 + F.interpolate(self.lateral2(p3), scale_factor=2.0, mode="nearest")
        return [self.head2(p2), self.head3(p3), self.head4(p4)]


def stride_of(raw: torch.Tensor) -> int:
    return INPUT_H // raw.shape[2]


def _grid(h: int, w: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (xs.flatten().float() + 0.5) * stride, (ys.flatten().float() + 0.5) * stride


def decode_level(raw: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes [B, N, 4] as x1 y1 x2 y2 in input pixels, class logits [B, N, NC])."""
    _, _, h, w = raw.shape
    raw = raw.flatten(2).transpose(1, 2)
    cx, cy = _grid(h, w, stride)
    ltrb = F.softplus(raw[..., :4]) * stride
    boxes = torch.stack(
        [cx - ltrb[..., 0], cy - ltrb[..., 1], cx + ltrb[..., 2], cy + ltrb[..., 3]], dim=-1
    )
    return boxes, raw[..., 4:]


class Exported(nn.Module):
    """The graph that ships: decoded boxes and scores in the YOLOv8 export layout."""

    def __init__(self, model: StreetDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, logits = [], []
        for raw in self.model(images):
            b, lg = decode_level(raw, stride_of(raw))
            boxes.append(b)
            logits.append(lg)
        xyxy = torch.cat(boxes, 1)
        cxcywh = torch.cat([(xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]], -1)
        return torch.cat([cxcywh, torch.sigmoid(torch.cat(logits, 1))], -1).transpose(1, 2)


# --- data --------------------------------------------------------------------------------
def letterbox(image: np.ndarray) -> np.ndarray:
    out = np.full((INPUT_H, INPUT_W, 3), 114, np.uint8)
    out[PAD_TOP : PAD_TOP + HEIGHT] = image
    return out


def conditions_for(seed: int) -> frozenset[str]:
    """The mix of training streets: a fifth plain, 30 % with every day condition at once (the
    hardest daytime street, which random draws almost never produce), 10 % with everything
    including night, and the rest with each condition at 35 %."""
    rng = np.random.default_rng([seed, 11])
    draw = rng.random()
    if draw < 0.2:
        return frozenset()
    if draw < 0.5:
        return frozenset(CONDITIONS) - {"night"}
    if draw < 0.6:
        return frozenset(CONDITIONS)
    return frozenset(c for c in CONDITIONS if rng.random() < 0.35)


class SceneBatches:
    """Random frames from random training scenes, rendered on the fly."""

    def __init__(self, seed: int, scenes: int) -> None:
        self.rng = np.random.default_rng(seed)
        seeds = list(TRAIN_SEEDS)[:scenes]
        self.scenes = [
            Scene(s, duration_s=600.0, traffic=1.0 + 0.5 * (s % 3), conditions=conditions_for(s))
            for s in seeds
        ]

    def batch(self, size: int) -> tuple[torch.Tensor, list[np.ndarray]]:
        images, targets = [], []
        for _ in range(size):
            scene = self.scenes[int(self.rng.integers(len(self.scenes)))]
            frame = scene.render(float(self.rng.uniform(5.0, 595.0)), int(self.rng.integers(4)))
            image = letterbox(frame.image)
            boxes = np.array(
                [[b.x1, b.y1 + PAD_TOP, b.x2, b.y2 + PAD_TOP, b.cls] for b in frame.boxes],
                np.float32,
            ).reshape(-1, 5)
            if self.rng.random() < 0.5:  # mirror: traffic in the other direction
                image = image[:, ::-1]
                boxes[:, [0, 2]] = INPUT_W - boxes[:, [2, 0]]
            images.append(image)
            targets.append(boxes)
        tensor = torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2)
        return tensor.float() / 255.0, targets


# --- loss --------------------------------------------------------------------------------
def level_for(cls: int, longer: float, fine_persons: bool) -> int:
    """The stride whose head learns a box of this class and longer side."""
    if fine_persons and cls == FINE_CLASS and longer <= FINE_SPLIT:
        return 4
    return 8 if longer <= LEVEL_SPLIT else 16


def assign(targets: list[np.ndarray], shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, ...]:
    """Positive cells per level: centre sampling inside each box, on the level its size fits."""
    strides = [INPUT_H // h for h, _ in shapes]
    fine_persons = 4 in strides
    batch = len(targets)
    n_cells = sum(h * w for h, w in shapes)
    cls_t = torch.zeros(batch, n_cells, NC)
    box_t = torch.zeros(batch, n_cells, 4)
    pos = torch.zeros(batch, n_cells, dtype=torch.bool)
    offset = 0
    for (h, w), stride in zip(shapes, strides, strict=True):
        cx, cy = _grid(h, w, stride)
        for bi, boxes in enumerate(targets):
            if not len(boxes):
                continue
            area_best = torch.full((h * w,), math.inf)
            for x1, y1, x2, y2, c in boxes.tolist():
                if level_for(int(c), max(x2 - x1, y2 - y1), fine_persons) != stride:
                    continue
                gx, gy = (x1 + x2) / 2, (y1 + y2) / 2
                radius = 1.5 * stride
                inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
                near = ((cx - gx).abs() < radius) & ((cy - gy).abs() < radius)
                cand = inside & near
                if not cand.any():
                    cand = torch.zeros_like(cand)
                    cand[((cx - gx) ** 2 + (cy - gy) ** 2).argmin()] = True
                area = float((x2 - x1) * (y2 - y1))
                take = cand & (area < area_best)
                area_best[take] = area
                idx = take.nonzero().flatten() + offset
                pos[bi, idx] = True
                cls_t[bi, idx] = 0.0
                cls_t[bi, idx, int(c)] = 1.0
                box_t[bi, idx] = torch.tensor([x1, y1, x2, y2])
        offset += h * w
    return cls_t, box_t, pos


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ix1, iy1 = torch.max(pred[:, 0], target[:, 0]), torch.max(pred[:, 1], target[:, 1])
    ix2, iy2 = torch.min(pred[:, 2], target[:, 2]), torch.min(pred[:, 3], target[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = area_p + area_t - inter + 1e-6
    cx1, cy1 = torch.min(pred[:, 0], target[:, 0]), torch.min(pred[:, 1], target[:, 1])
    cx2, cy2 = torch.max(pred[:, 2], target[:, 2]), torch.max(pred[:, 3], target[:, 3])
    hull = (cx2 - cx1) * (cy2 - cy1) + 1e-6
    return 1 - inter / union + (hull - union) / hull


def loss_fn(
    outputs: list[torch.Tensor], targets: list[np.ndarray]
) -> tuple[torch.Tensor, dict[str, float]]:
    boxes, logits = zip(*(decode_level(o, stride_of(o)) for o in outputs), strict=True)
    pred_boxes, pred_logits = torch.cat(boxes, 1), torch.cat(logits, 1)
    shapes = [(o.shape[2], o.shape[3]) for o in outputs]
    cls_t, box_t, pos = assign(targets, shapes)
    n_pos = max(1.0, float(pos.sum()))
    p = torch.sigmoid(pred_logits)
    ce = F.binary_cross_entropy_with_logits(pred_logits, cls_t, reduction="none")
    p_t = p * cls_t + (1 - p) * (1 - cls_t)
    alpha = 0.25 * cls_t + 0.75 * (1 - cls_t)
    cls_loss = (alpha * (1 - p_t) ** 2 * ce).sum() / n_pos
    if pos.any():
        box_loss = giou_loss(pred_boxes[pos], box_t[pos]).sum() / n_pos
    else:
        box_loss = pred_boxes.sum() * 0.0
    total = cls_loss + 2.0 * box_loss
    return total, {"cls": float(cls_loss.detach()), "box": float(box_loss.detach())}


# --- export ------------------------------------------------------------------------------
def export_onnx(model: StreetDetector, path: Path) -> None:
    model.eval()
    wrapper = Exported(model)
    dummy = torch.zeros(1, 3, INPUT_H, INPUT_W)
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=["output0"],
        opset_version=17,
        dynamo=False,
    )


def calibration_frames(count: int = 64) -> list[np.ndarray]:
    """Letterboxed training frames, as NCHW float arrays, for static quantization."""
    batches = SceneBatches(seed=7, scenes=16)
    frames = []
    for _ in range(count):
        images, _ = batches.batch(1)
        frames.append(images.numpy())
    return frames


def quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration_frames())

        def get_next(self) -> dict[str, np.ndarray] | None:
            frame = next(self._it, None)
            return None if frame is None else {"images": frame}

    prepared = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared))
    quantize_static(
        str(prepared),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        # Only the convolutions: the decode at the end (softplus, box arithmetic, sigmoid)
        # stays in float, where box coordinates keep their precision.
        op_types_to_quantize=["Conv"],
    )
    prepared.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description="train and export the street detector")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--scenes", type=int, default=120)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=Path("sensorpipe/models"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quantize", action="store_true", help="also write a static-int8 model")
    parser.add_argument(
        "--fine-persons", action="store_true", help="a stride-4 head for small people (candidate)"
    )
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    args.out.mkdir(parents=True, exist_ok=True)
    data = SceneBatches(args.seed, args.scenes)
    model = StreetDetector(fine_persons=args.fine_persons)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.1
    )
    started = time.monotonic()
    model.train()
    for step in range(1, args.steps + 1):
        images, targets = data.batch(args.batch)
        loss, parts = loss_fn(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps:
            elapsed = time.monotonic() - started
            print(
                f"step {step}/{args.steps}  loss {float(loss):.3f}  cls {parts['cls']:.3f}  "
                f"box {parts['box']:.3f}  {elapsed:.0f} s",
                flush=True,
            )
    fp32 = args.out / "street-detector.onnx"
    export_onnx(model, fp32)
    torch.save(model.state_dict(), args.out / "street-detector.pt")
    meta = {
        "classes": list(DETECTOR_CLASSES),
        "input": [1, 3, INPUT_H, INPUT_W],
        "layout": "yolov8",
        "steps": args.steps,
        "fine_persons": args.fine_persons,
        "batch": args.batch,
        "seed": args.seed,
        "train_seeds": f"{TRAIN_SEEDS.start}-{TRAIN_SEEDS.start + args.scenes - 1}",
        "torch": torch.__version__,
    }
    (args.out / "street-detector.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {fp32}")
    if args.quantize:
        int8 = args.out / "street-detector.int8.onnx"
        quantize(fp32, int8)
        print(f"wrote {int8}")


if __name__ == "__main__":
    main()
