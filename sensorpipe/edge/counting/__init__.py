"""On-device, anonymised counting: camera frames in, counts per class and direction out.

Frames live only in memory inside this package: nothing of an image is written, logged or
published. What leaves the device is `IntervalCounts`: numbers per interval.
"""
