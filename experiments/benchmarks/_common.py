"""Small helpers shared by the benchmark scripts."""
from __future__ import annotations

import json


def fmt(value, spec: str = ".2e") -> str:
    """``value`` formatted, or "–" when None (e.g. no pretraining loss for raw K-means)."""
    return "–" if value is None else format(value, spec)


def write_json(path: str | None, rows) -> None:
    """Write the measured rows to ``path`` (when given) as JSON."""
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)


def agreement(a: dict, b: dict, y=None) -> dict:
    """How closely two runs of the same settings agree (e.g. one run alone and the same run inside
    a vmapped program, which rounds differently): ``a`` and ``b`` hold ``labels``, ``pretrain_loss``
    and optionally ``embedding``, ``params``, ``n_iter``; ``y`` the true labels (for ACC).

    Returns the first-epoch and the largest pretraining-loss differences, the fraction of
    identical labels (``label_agreement``) and of labels equal after the best matching of the
    clusters (``label_agreement_matched``: the runs may name the same clusters differently), the
    largest embedding / parameter differences and each side's ACC."""
    import jax
    import numpy as np

    from sdekc_jax.metrics import cluster_acc

    la, lb = np.asarray(a["labels"]), np.asarray(b["labels"])
    pa, pb = np.asarray(a["pretrain_loss"], np.float64), np.asarray(b["pretrain_loss"], np.float64)
    out = {"labels_equal": bool(np.array_equal(la, lb)), "label_agreement": float(np.mean(la == lb)),
           "label_agreement_matched": float(cluster_acc(la, lb)),
           "pretrain_loss_first_epoch_abs_diff": float(abs(pa[0] - pb[0])) if pa.size and pb.size else None,
           "pretrain_loss_max_abs_diff": float(np.max(np.abs(pa - pb))) if pa.size and pa.shape == pb.shape else None}
    if a.get("embedding") is not None and b.get("embedding") is not None:
        out["embedding_max_abs_diff"] = float(np.max(np.abs(np.asarray(a["embedding"]) - np.asarray(b["embedding"]))))
    if a.get("params") is not None and b.get("params") is not None:
        diffs = jax.tree.leaves(jax.tree.map(lambda u, v: float(np.max(np.abs(np.asarray(u) - np.asarray(v)), initial=0.0)),
                                             a["params"], b["params"]))
        out["params_max_abs_diff"] = max(diffs, default=0.0)
    if "n_iter" in a and "n_iter" in b:
        out["n_iter"] = [int(a["n_iter"]), int(b["n_iter"])]
    if y is not None:
        out["acc"] = [float(cluster_acc(y, la)), float(cluster_acc(y, lb))]
    return out


def summarise_agreement(rows: list[dict]) -> dict:
    """Over the runs compared by :func:`agreement`: the worst first-epoch loss difference and label
    agreement, and the mean ± std of each side's ACC and of their paired difference."""
    import numpy as np

    firsts = [r["pretrain_loss_first_epoch_abs_diff"] for r in rows if r["pretrain_loss_first_epoch_abs_diff"] is not None]
    out = {"max_first_epoch_loss_abs_diff": max(firsts) if firsts else None,
           "min_label_agreement": min(r["label_agreement"] for r in rows),
           "min_label_agreement_matched": min(r["label_agreement_matched"] for r in rows),
           "runs_with_equal_labels": sum(r["labels_equal"] for r in rows), "runs": len(rows)}
    if all("acc" in r for r in rows):
        acc = np.asarray([r["acc"] for r in rows], np.float64)
        d = acc[:, 1] - acc[:, 0]
        out.update(acc_mean=[float(v) for v in acc.mean(0)], acc_std=[float(v) for v in acc.std(0)],
                   acc_diff_mean=float(d.mean()), acc_diff_std=float(d.std()), acc_diff_max_abs=float(np.abs(d).max()))
    return out
