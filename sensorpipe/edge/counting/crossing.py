"""Counting line crossings, once per crossing, with direction.

The line runs from p1 to p2. A track is on the positive side when (p2 - p1) x (c - p1) > 0 for
its centre c. A crossing from the positive to the negative side is `directions[0]`, the
other way `directions[1]`; for the default vertical line drawn top to bottom that is
left-to-right and right-to-left. A band around the line (`margin` pixels, or a quarter of the
box width if that is more) keeps jitter from counting twice: a side only changes once the
centre is clearly beyond the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensorpipe.edge.counting.tracker import Track


@dataclass(frozen=True, slots=True)
class CrossingEvent:
    t: float
    track_id: int
    count_class: str
    direction: str


class CountingLine:
    def __init__(
        self,
        p1: tuple[float, float],
        p2: tuple[float, float],
        *,
        directions: tuple[str, str] = ("left_to_right", "right_to_left"),
        margin: float = 3.0,
        min_hits: int = 2,
    ) -> None:
        self.p1, self.p2 = p1, p2
        self.directions = directions
        self.margin = margin
        self.min_hits = min_hits
        dx, dy = p2[0] - p1[0], p2[1] - p1[1]
        self._length = (dx * dx + dy * dy) ** 0.5
        if self._length == 0:
            raise ValueError("the counting line needs two different points")
        self._sides: dict[int, int] = {}
        self._counted: dict[int, set[str]] = {}

    def signed_distance(self, x: float, y: float) -> float:
        dx, dy = self.p2[0] - self.p1[0], self.p2[1] - self.p1[1]
        return (dx * (y - self.p1[1]) - dy * (x - self.p1[0])) / self._length

    def update(self, tracks: list[Track], t: float) -> list[CrossingEvent]:
        events = []
        for track in tracks:
            distance = self.signed_distance(*track.centre)
            band = max(self.margin, 0.25 * float(track.box[2] - track.box[0]))
            if abs(distance) <= band:
                continue
            side = 1 if distance > 0 else -1
            before = self._sides.get(track.id)
            self._sides[track.id] = side
            if before is None or before == side or track.hits < self.min_hits:
                continue
            direction = self.directions[0] if before > 0 else self.directions[1]
            done = self._counted.setdefault(track.id, set())
            if direction in done:
                continue  # back and forth across the line: one object, counted once a way
            done.add(direction)
            events.append(CrossingEvent(t, track.id, track.count_class, direction))
        return events

    def forget(self, live_ids: set[int]) -> None:
        """Drop state of tracks the tracker no longer has."""
        for ident in [i for i in self._sides if i not in live_ids]:
            self._sides.pop(ident, None)
            self._counted.pop(ident, None)
