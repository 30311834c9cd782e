"""On-device, anonymised counting: camera frames in, counts per class and direction out.

Frames live only in memory inside this package: nothing of an image is written, logged or
published. What leaves the device is `IntervalCounts`: numbers per interval.

`pipeline` takes a frame through `preprocess` (letterboxing), `detector` (an ONNX model on the
CPU, its file described by `modelspec`) and `decode` (outputs to boxes), `classes` (detector
classes to count classes), `tracker`, `crossing` (counting-line crossings with direction) and
`intervals` (counts per interval); `loop` runs it in its own thread on frames from `sources`
(a video file, V4L2, the Pi camera). `config` is the `[counting]` section of the edge
configuration, `errors` its exceptions; `video` counts a video file and scores it against
annotated crossings, `clips` fetches the real evaluation clip.
"""
