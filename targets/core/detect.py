"""SSD post-processing in numpy: default boxes, box decoding, per-class non-maximum suppression.

Defaults as torchvision's SSD: score threshold 0.01, 200 candidates per class, 100 detections,
variances (0.1, 0.2); IoU threshold from the model's metadata.
"""

from __future__ import annotations

from typing import Any


def default_boxes(feature_maps: list[int], per_location: int) -> Any:
    """(N, 4) boxes as (cx, cy, w, h) in [0, 1]: scales from 0.2 to 0.95 across the maps, aspect
    ratios 1, 2, 1/2, 3, 1/3 and one square between this scale and the next."""
    import numpy as np

    m = len(feature_maps)
    scales = [0.2 + (0.95 - 0.2) * k / max(m - 1, 1) for k in range(m)] + [1.0]
    ratios = [2.0, 0.5, 3.0, 1 / 3][: per_location - 2]
    out = []
    for k, f in enumerate(feature_maps):
        s, s_next = scales[k], scales[k + 1]
        shapes = [(s, s), (np.sqrt(s * s_next),) * 2]
        shapes += [(s * np.sqrt(r), s / np.sqrt(r)) for r in ratios]
        ys, xs = np.meshgrid((np.arange(f) + 0.5) / f, (np.arange(f) + 0.5) / f, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], 1)
        for cx_cy in centres:
            for w, h in shapes:
                out.append((cx_cy[0], cx_cy[1], w, h))
    return np.asarray(out, dtype=np.float32)


def decode(loc: Any, anchors: Any, variances: tuple[float, float] = (0.1, 0.2)) -> Any:
    """Offsets to (x1, y1, x2, y2) boxes in [0, 1]."""
    import numpy as np

    cxcy = anchors[:, :2] + loc[:, :2] * variances[0] * anchors[:, 2:]
    wh = anchors[:, 2:] * np.exp(np.clip(loc[:, 2:] * variances[1], -10, 10))
    return np.clip(np.concatenate([cxcy - wh / 2, cxcy + wh / 2], 1), 0.0, 1.0)


def nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Indices kept by greedy non-maximum suppression, best first."""
    import numpy as np

    order = np.argsort(-scores)
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess(loc: Any, logits: Any, anchors: Any, *, iou_threshold: float,
                score_threshold: float = 0.01, candidates: int = 400,
                detections: int = 100) -> list[tuple[Any, float, int]]:
    """Softmax over classes (0 is background), keep the best ``candidates`` (anchor, class)
    pairs above the threshold, decode them, and suppress per class in one batched pass (boxes
    offset by class so different classes never overlap, as torchvision's ``batched_nms``)."""
    import numpy as np

    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    fg = p[:, 1:]
    flat = np.flatnonzero(fg > score_threshold)
    if flat.size == 0:
        return []
    if flat.size > candidates:
        flat = flat[np.argpartition(-fg.ravel()[flat], candidates)[:candidates]]
    rows, cls = np.divmod(flat, fg.shape[1])
    scores = fg[rows, cls]
    boxes = decode(loc[rows], anchors[rows])
    kept = nms(boxes + (cls * 2.0)[:, None], scores, iou_threshold)[:detections]
    return [(boxes[i], float(scores[i]), int(cls[i]) + 1) for i in kept]
