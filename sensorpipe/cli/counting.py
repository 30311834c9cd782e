"""`sensorpipe count-video` and `count-eval`: counting a video, and counting against a truth."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sensorpipe.cli.common import fail
from sensorpipe.cli.options import json_option

# Threads of the detector (ONNX Runtime) for both commands.
THREADS_OPTION = click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)


@click.command("count-eval")
@click.option(
    "--seed",
    type=int,
    default=1000,
    show_default=True,
    help="Scene seed; 1000 and up were never used in training.",
)
@click.option("--minutes", type=click.FloatRange(min=0.5), default=15, show_default=True)
@click.option(
    "--fps",
    type=click.FloatRange(min=1),
    default=5,
    show_default=True,
    help="Camera frame rate of the synthetic sequence.",
)
@click.option("--interval-minutes", type=click.FloatRange(min=0.5), default=15, show_default=True)
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    default=None,
    help="ONNX model (default: the shipped street detector).",
)
@THREADS_OPTION
@click.option(
    "--video",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Evaluate on a real video instead, against --truth.",
)
@click.option(
    "--truth",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Annotated crossings of --video: CSV with time_s,class,direction.",
)
@click.option("--line", "line_text", default=None, help="Counting line for --video: X1,Y1,X2,Y2.")
@click.option(
    "--conditions",
    default="none",
    show_default=True,
    help="Synthetic street conditions, comma-separated: perspective, crowds, parked, shadows, "
    "night, rain, motion_blur, jpeg; or 'day' (all but night) or 'all'.",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=1.5,
    show_default=True,
    help="Seconds a counted crossing may lie from the annotated one (--video).",
)
@json_option()
def count_eval(
    seed: int,
    minutes: float,
    fps: float,
    interval_minutes: float,
    model: Path | None,
    threads: int,
    video: Path | None,
    truth: Path | None,
    line_text: str | None,
    conditions: str,
    tolerance: float,
    as_json: bool,
) -> None:
    """Count a held-out synthetic street (or, with --video, a real clip) against the truth."""
    from sensorpipe.edge.counting.errors import ModelError
    from sensorpipe.firmware_sim.conditions import parse_conditions
    from sensorpipe.firmware_sim.count_eval import DEFAULT_MODEL, evaluate

    if video is not None or truth is not None:
        if video is None or truth is None or line_text is None:
            fail("--video needs --truth and --line (and --truth needs --video)")
        _eval_video(video, truth, line_text, fps, model, threads, tolerance, as_json)
        return
    try:
        chosen = parse_conditions(conditions)
    except ValueError as exc:
        fail(str(exc))

    def progress(fraction: float) -> None:
        click.echo(f"  {fraction * 100:5.1f} % of the sequence counted", err=True)

    try:
        result = evaluate(
            seed,
            minutes,
            model=model or DEFAULT_MODEL,
            fps=fps,
            interval_minutes=interval_minutes,
            threads=threads,
            conditions=chosen,
            progress=None if as_json else progress,
        )
    except (ModelError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(
        f"seed {seed}, {minutes:g} min at {fps:g} fps, intervals of "
        f"{interval_minutes:g} min, model {result.model_id}, "
        f"conditions {', '.join(result.conditions) or 'none'}"
    )
    click.echo(f"{'class':14s} {'direction':15s} {'predicted':>9s} {'true':>6s} {'hidden':>6s}")
    for name, c in result.classes.items():
        for d in c.true:
            click.echo(f"{name:14s} {d:15s} {c.predicted[d]:9d} {c.true[d]:6d} {c.hidden[d]:6d}")
    click.echo("")
    click.echo(f"{'class':14s} {'WAPE':>7s} {'MAE':>7s} {'bias':>7s}")
    for name, c in result.classes.items():
        click.echo(f"{name:14s} {c.wape * 100:6.1f}% {c.mae:7.2f} {c.bias * 100:+6.1f}%")
    if any(sum(c.hidden.values()) for c in result.classes.values()):
        click.echo(
            "\n'hidden': crossings behind parked vehicles up to the line, which no camera at "
            "this spot can see;\nany count between 'true' and 'true' + 'hidden' is no error."
        )
    click.echo(
        f"\n{result.frames} frames in {result.seconds:.1f} s "
        f"({result.frames / result.seconds:.1f} frames/s, {threads} thread)"
    )


def _count_progress(seconds: float, frames: int) -> None:
    click.echo(f"  {seconds:7.1f} s of video, {frames} frames counted", err=True)


def _eval_video(
    video: Path,
    truth_path: Path,
    line_text: str,
    fps: float,
    model: Path | None,
    threads: int,
    tolerance: float,
    as_json: bool,
) -> None:
    from sensorpipe.edge.counting.errors import ModelError, SourceUnavailable
    from sensorpipe.edge.counting.video import (
        REAL_MODEL,
        count_video,
        parse_line,
        read_truth,
        score,
    )

    try:
        line = parse_line(line_text)
        truth = read_truth(truth_path)
        count = count_video(
            video,
            line,
            fps=fps,
            model=model or REAL_MODEL,
            threads=threads,
            progress=None if as_json else _count_progress,
        )
    except (ModelError, SourceUnavailable, ValueError) as exc:
        fail(str(exc))
    result = score(count, truth, tolerance)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(
        f"{video.name}: {count.seconds:.1f} s at {fps:g} fps, model {count.model_id}, "
        f"tolerance {tolerance:g} s"
    )
    click.echo(
        f"{'class':14s} {'true':>5s} {'counted':>7s} {'matched':>7s} {'WAPE':>7s} "
        f"{'precision':>9s} {'recall':>7s}"
    )

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v * 100:.1f}%"

    for name, c in result.classes.items():
        click.echo(
            f"{name:14s} {sum(c.true.values()):5d} {sum(c.predicted.values()):7d} "
            f"{c.matched:7d} {pct(c.wape):>7s} {pct(c.precision):>9s} {pct(c.recall):>7s}"
        )
    click.echo(f"all crossings: precision {pct(result.precision)}, recall {pct(result.recall)}")
    click.echo(f"{count.frames} frames in {count.processing_s:.1f} s")


@click.command("count-video")
@click.argument("video", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--line",
    "line_text",
    required=True,
    help="Counting line X1,Y1,X2,Y2: frame fractions if all are 0..1, else pixels.",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0.5, max=60),
    default=5,
    show_default=True,
    help="Frames per second to decode and count (the camera rate on a device).",
)
@click.option(
    "--model",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="ONNX detector with a <name>.json class list beside it (default: the COCO detector).",
)
@THREADS_OPTION
@json_option()
def count_video_cmd(
    video: Path,
    line_text: str,
    fps: float,
    model: Path | None,
    threads: int,
    as_json: bool,
) -> None:
    """Count the crossings of a line in a video file, per class and direction."""
    from sensorpipe.edge.counting.errors import ModelError, SourceUnavailable
    from sensorpipe.edge.counting.video import REAL_MODEL, count_video, parse_line

    try:
        count = count_video(
            video,
            parse_line(line_text),
            fps=fps,
            model=model or REAL_MODEL,
            threads=threads,
            progress=_count_progress,
        )
    except (ModelError, SourceUnavailable, ValueError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(count.as_dict()))
        return
    click.echo(f"{video.name}: {count.seconds:.1f} s at {fps:g} fps, model {count.model_id}")
    click.echo(f"{'class':14s} {'total':>6s} {'left_to_right':>14s} {'right_to_left':>14s}")
    for name, n in count.totals.items():
        d = count.by_direction[name]
        click.echo(f"{name:14s} {n:6d} {d['left_to_right']:14d} {d['right_to_left']:14d}")
    click.echo(
        f"{count.frames} frames in {count.processing_s:.1f} s "
        f"({count.frames / max(count.processing_s, 1e-9):.1f} frames/s, {threads} thread)"
    )
