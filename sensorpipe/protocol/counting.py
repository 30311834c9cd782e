"""What the edge counts: classes of passers-by, and how directions are named.

The detector's own classes (COCO names such as person, bicycle, car, truck) are mapped to these
in the edge configuration; a person riding a bicycle becomes one cyclist.
"""

COUNT_CLASSES: dict[str, str] = {
    "pedestrian": "a person on foot",
    "cyclist": "a person on a bicycle, or a bicycle on its own",
    "car": "a car or van",
    "motorcycle": "a motorcycle or scooter, with its rider",
    "heavy_vehicle": "a bus or truck",
}
DIRECTION_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
