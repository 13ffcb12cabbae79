"""DEKM.py's protocol in TensorFlow/Keras (issue 19): does the reference code's own framework reach
the paper's USPS numbers here?

A re-implementation, in ``tf.keras`` (Keras 2: TensorFlow 2.15 is the newest with DEKM.py's
``tf.keras`` API; DEKM.py pins TensorFlow 2.4, which does not install on Python 3.11), of the
DEKM reference code's USPS run (public repository ``spdj2271/DEKM``, ``DEKM.py`` / ``utils.py``),
detail for detail:

- data: USPS.h5's train and test sets concatenated (9,298 images, [0, 1]), one random permutation
  per run (``get_xy``'s shuffle);
- network: conv 32 5x5 s2 / 64 5x5 s2 / 128 3x3 s2, all ``'same'``, ReLU, encoder kernels
  ``'uniform'`` (U(-0.05, 0.05)), a linear Dense embedding of 10; Dense 512 ReLU, reshape, and
  transposed convolutions 64 3x3 / 32 5x5 / 1 5x5, stride 2, ``'same'``, the last linear; every
  other kernel Keras' default (glorot uniform), biases zero. ``sdekc`` adds the two weighted skips
  (``w_enc * encoder_feature + w_dec * decoder_feature`` after the first two transposed
  convolutions' ReLU; default ``(0.001, 0.999)``, our reading);
- pretraining: ``model.fit`` on ``Dataset.shuffle(8000).batch(256)``, Keras' Adam (lr 1e-3, ε
  1e-7), MSE, 200 epochs;
- clustering: a fresh Keras Adam; every 40 steps embed all data, ``KMeans(n_init=100)`` at the
  first refresh, then ``n_init = 2 * n_iter_`` of the previous fit (fresh k-means++, scikit-learn);
  count the changed points after matching the old labels to the new (Hungarian); stop when at most
  ``tol * n`` changed (DEKM: 0.5 %; SDEKC: the paper's 0.1 %) or after 14,000 steps; S_w,
  eigenvectors sorted ascending, ``y = z V``; mini-batches of 256 walk the data in its (permuted)
  order, the last partial batch taken, then wrap; the loss is the batch's *sum* of per-point MSE
  against the greedy target (its last coordinate the centre's). The reported ACC / NMI are the
  last refresh's K-means labels, as DEKM.py logs them.

This script needs TensorFlow (``pip install tensorflow-cpu==2.15.1 scikit-learn h5py scipy``, a
separate environment from the JAX one is fine) and imports nothing from ``sdekc_jax``. Each
finished cell is written at once to ``<out>/cells/<method>-keras-s<seed>.json`` and skipped on the
next run (several processes may share ``--out``); the pretrained network is saved to
``<out>/params/<method>-s<seed>.npz`` (Keras weights in layer order) and reused.
``<out>/keras_reference.md`` is rewritten after every cell, with our own runs beside it when
``--ours`` names the cross-implementation cells. :func:`to_sdekc_params` converts a saved network
to our pytree (``--write-fixture`` writes the data of the test that checks it).

    python experiments/keras_reference.py --methods dekm sdekc --seeds 0 1 2 3 4 5 6 7 8 9 \
        --data-root ../shared/data --out results/keras-reference \
        --ours results/cross-implementation/cells
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("dekm", "sdekc")
TOL = {"dekm": 0.005, "sdekc": 0.001}
SKIPS = {"dekm": None, "sdekc": (0.001, 0.999)}
UPDATE_INTERVAL = 40
MAX_STEPS = 140 * 100
BATCH = 256
EMBED = 10


# --- data and metrics (NumPy only) --------------------------------------------------------------


def load_usps(data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """USPS.h5's train and test sets, concatenated: images (9298, 16, 16, 1) float32, labels."""
    import h5py

    path = Path(data_root) / "usps" / "USPS.h5"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (the USPS.h5 of the DEKM reference code)")
    with h5py.File(path, "r") as f:
        x = np.concatenate([f["train"]["data"][:], f["test"]["data"][:]]).astype(np.float32)
        y = np.concatenate([f["train"]["target"][:], f["test"]["target"][:]]).astype(np.int64)
    return x.reshape(len(x), 16, 16, 1), y


def acc_nmi(y_true, y_pred) -> tuple[float, float]:
    """Clustering accuracy (Hungarian matching) and NMI (arithmetic mean, scikit-learn's)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import normalized_mutual_info_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = int(max(y_true.max(), y_pred.max())) + 1
    w = np.zeros((k, k), np.int64)
    np.add.at(w, (y_pred, y_true), 1)
    r, c = linear_sum_assignment(-w)
    return float(w[r, c].sum() / len(y_true)), float(normalized_mutual_info_score(y_true, y_pred))


def n_changed(old, new, k: int) -> int:
    """Points whose cluster changed, after matching the old labels to the new (Hungarian): label
    names are arbitrary between K-means fits. Every point counts as changed when ``old`` has no
    labels yet (all -1)."""
    from scipy.optimize import linear_sum_assignment

    old, new = np.asarray(old), np.asarray(new)
    if (old < 0).all():
        return len(new)
    w = np.zeros((k, k), np.int64)
    np.add.at(w, (new, old), 1)
    r, c = linear_sum_assignment(-w)
    mapped = np.empty(k, np.int64)
    mapped[c] = r
    return int(np.sum(mapped[old] != new))


def greedy_frame(h: np.ndarray, labels: np.ndarray, centres: np.ndarray):
    """(V, H V, U V): the eigenvectors of the within-cluster scatter, sorted by ascending
    eigenvalue, and the embeddings and centres in that frame."""
    d = h - centres[labels]
    s = d.T @ d
    vals, vecs = np.linalg.eigh(s.astype(np.float64))
    v = vecs[:, np.argsort(vals)].astype(np.float32)
    return v, (h @ v).astype(np.float32), (centres @ v).astype(np.float32)


# --- the Keras run --------------------------------------------------------------------------------


def build(skips, embed: int = EMBED, filters=(32, 64, 128)):
    """(autoencoder, encoder): Keras models sharing layers; the encoder maps images to z."""
    import tensorflow as tf
    from tensorflow.keras import layers

    f_a, f_b, f_c = filters
    inp = layers.Input(shape=(16, 16, 1))
    f0 = layers.Conv2D(f_a, 5, strides=2, padding="same", activation="relu", kernel_initializer="uniform")(inp)
    f1 = layers.Conv2D(f_b, 5, strides=2, padding="same", activation="relu", kernel_initializer="uniform")(f0)
    f2 = layers.Conv2D(f_c, 3, strides=2, padding="same", activation="relu", kernel_initializer="uniform")(f1)
    z = layers.Dense(embed, name="embed")(layers.Flatten()(f2))
    h = layers.Dense(f_c * 2 * 2, activation="relu")(z)
    h = layers.Reshape((2, 2, f_c))(h)
    h = layers.Conv2DTranspose(f_b, 3, strides=2, padding="same", activation="relu")(h)
    if skips is not None:
        h = layers.Add()([layers.Rescaling(skips[0])(f1), layers.Rescaling(skips[1])(h)])
    h = layers.Conv2DTranspose(f_a, 5, strides=2, padding="same", activation="relu")(h)
    if skips is not None:
        h = layers.Add()([layers.Rescaling(skips[0])(f0), layers.Rescaling(skips[1])(h)])
    out = layers.Conv2DTranspose(1, 5, strides=2, padding="same")(h)
    return tf.keras.Model(inp, out), tf.keras.Model(inp, z)


def write_fixture(path: Path, x: np.ndarray) -> None:
    """A small Keras network (filters 4, 6, 8, embedding 3, the skips at (0.3, 0.7), random
    non-zero biases), its weights and its outputs on ``x``: the test data for
    :func:`to_sdekc_params` (``tests/data/keras_cae_small.npz``)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    auto, encoder = build((0.3, 0.7), embed=3, filters=(4, 6, 8))
    rng = np.random.default_rng(0)
    auto.set_weights([w + (0.1 * rng.normal(size=w.shape).astype(np.float32) if w.ndim == 1 else 0)
                      for w in auto.get_weights()])
    np.savez_compressed(path, x=x, z=encoder(x).numpy(), x_hat=auto(x).numpy(),
                        **{f"w{i}": w for i, w in enumerate(auto.get_weights())})


def pretrain(auto, x: np.ndarray, epochs: int, log) -> list[float]:
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, x)).shuffle(8000).batch(BATCH)
    auto.compile(optimizer="adam", loss="mse")
    losses = []

    class Log(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append(float(logs["loss"]))
            if epoch == 0 or (epoch + 1) % 20 == 0:
                log(f"  epoch {epoch + 1}/{epochs}: MSE {losses[-1]:.5f}")

    auto.fit(ds, epochs=epochs, verbose=0, callbacks=[Log()])
    return losses


def cluster(encoder, x: np.ndarray, y: np.ndarray, tol: float, log, k: int = 10) -> dict:
    """DEKM.py's clustering phase on a pretrained encoder; returns the last refresh's metrics."""
    import tensorflow as tf
    from sklearn.cluster import KMeans

    n = len(x)
    opt = tf.keras.optimizers.Adam()
    variables = encoder.trainable_variables

    @tf.function
    def step(xb, target, v):
        with tf.GradientTape() as tape:
            yb = tf.matmul(encoder(xb, training=True), v)
            loss = tf.reduce_sum(tf.reduce_mean(tf.square(target - yb), axis=-1))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    labels = -np.ones(n, np.int64)
    n_init, index, history = 100, 0, []
    first = None
    for ite in range(MAX_STEPS):
        if ite % UPDATE_INTERVAL == 0:
            h = encoder.predict(x, batch_size=1024, verbose=0)
            km = KMeans(n_clusters=k, n_init=n_init).fit(h)
            n_init = int(km.n_iter_ * 2)
            new = km.labels_.astype(np.int64)
            changed = n_changed(labels, new, k)
            labels = new
            v, h_vt, u_vt = greedy_frame(h, labels, km.cluster_centers_.astype(np.float32))
            acc, nmi = acc_nmi(y, labels)
            first = first or (acc, nmi)
            history.append({"step": ite, "acc": acc, "nmi": nmi, "changed": changed})
            log(f"  refresh {ite // UPDATE_INTERVAL}: ACC {acc:.4f} NMI {nmi:.4f} changed {changed}")
            if changed <= tol * n:
                break
        idx = np.arange(index * BATCH, min((index + 1) * BATCH, n))
        target = h_vt[idx].copy()
        target[:, -1] = u_vt[labels[idx], -1]
        step(tf.constant(x[idx]), tf.constant(target), tf.constant(v))
        index = index + 1 if (index + 1) * BATCH <= n else 0
    return {"acc": history[-1]["acc"], "nmi": history[-1]["nmi"], "first_acc": first[0], "first_nmi": first[1],
            "n_refreshes": len(history), "converged": history[-1]["changed"] <= tol * n, "history": history}


def run_cell(method: str, seed: int, x0: np.ndarray, y0: np.ndarray, params_dir: Path, epochs: int, log) -> dict:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)  # Python, NumPy (scikit-learn's K-means) and TensorFlow
    perm = np.random.RandomState(seed).permutation(len(x0))
    x, y = x0[perm], y0[perm]
    auto, encoder = build(SKIPS[method])
    path = params_dir / f"{method}-s{seed}.npz"
    t0 = time.perf_counter()
    if path.is_file():
        saved = np.load(path)
        losses = saved["losses"].tolist()
        if len(losses) != epochs:
            raise ValueError(f"{path} was pretrained for {len(losses)} epochs, not {epochs}: "
                             f"use another --out, or remove the file to pretrain again")
        auto.set_weights([saved[f"w{i}"] for i in range(len(auto.get_weights()))])
        log(f"{method} seed {seed}: pretrained network loaded from {path}")
    else:
        log(f"{method} seed {seed}: pretraining {epochs} epochs")
        losses = pretrain(auto, x, epochs, log)
        params_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, losses=np.asarray(losses), **{f"w{i}": w for i, w in enumerate(auto.get_weights())})
        os.replace(tmp, path)
    t1 = time.perf_counter()
    res = cluster(encoder, x, y, TOL[method], log)
    t2 = time.perf_counter()
    return {"method": method, "implementation": "keras", "seed": seed, "tensorflow": tf.__version__,
            "pretrain_epochs": epochs, "pretrain_final_mse": losses[-1] if losses else None,
            "pretrain_s": t1 - t0, "cluster_s": t2 - t1, "tol": TOL[method], "skips": SKIPS[method], **res}


def to_sdekc_params(weights: list) -> dict:
    """The Keras network's weights (``autoencoder.get_weights()``, the order :func:`build` creates
    them) as ``sdekc_jax``'s CAE pytree ``{"encoder", "decoder"}`` (NumPy float32): conv and dense
    kernels keep their layout (HWIO, (in, out), NHWC flatten order); a ``Conv2DTranspose`` kernel
    ``(kh, kw, out, in)`` is the gradient of a convolution, so its taps are flipped and its last
    two axes swapped for ``lax.conv_transpose``'s ``(kh, kw, in, out)``."""
    w = [np.asarray(a, np.float32) for a in weights]
    if len(w) != 16:
        raise ValueError(f"expected the 16 weight arrays of the CAE, got {len(w)}")
    pair = lambda i: {"kernel": w[i], "bias": w[i + 1]}
    up = lambda i: {"kernel": np.ascontiguousarray(w[i][::-1, ::-1].transpose(0, 1, 3, 2)), "bias": w[i + 1]}
    return {"encoder": {"conv0": pair(0), "conv1": pair(2), "conv2": pair(4), "embed": pair(6)},
            "decoder": {"dense": pair(8), "conv0": up(10), "conv1": up(12), "conv2": up(14)}}


# --- report ---------------------------------------------------------------------------------------


def _mean_std(a) -> str:
    return f"{np.mean(a):.4f} ± {np.std(a, ddof=1) if len(a) > 1 else 0.0:.4f}" if a else ""


def markdown(cells: list[dict], ours: dict) -> str:
    """The per-seed table (Keras, and ours where ``ours[(method, seed)]`` holds our ACC) and the
    difference of the two means with its (Welch) standard error."""
    lines = ["# DEKM.py's protocol in Keras against ours (USPS, full budgets)", "",
             "ACC of the last refresh; ours: `sdekc_jax` pretraining and clustering phase "
             "(the cross-implementation runner's `jax x jax` cells).", ""]
    for m in METHODS:
        mine = sorted((c for c in cells if c["method"] == m), key=lambda c: c["seed"])
        if not mine:
            continue
        lines += [f"## {m}", "", "| seed | Keras ACC | Keras NMI | first refresh ACC | refreshes | final MSE | ours ACC |",
                  "|---|---|---|---|---|---|---|"]
        for c in mine:
            o = ours.get((m, c["seed"]))
            lines.append(f"| {c['seed']} | {c['acc']:.4f} | {c['nmi']:.4f} | {c['first_acc']:.4f} | {c['n_refreshes']} | "
                         f"{c['pretrain_final_mse']:.5f} | {'' if o is None else f'{o:.4f}'} |")
        k = [c["acc"] for c in mine]
        o = [a for (mm, _), a in sorted(ours.items()) if mm == m]
        lines += ["", f"- Keras: ACC {_mean_std(k)}, NMI {_mean_std([c['nmi'] for c in mine])}, "
                      f"final pretraining MSE {np.mean([c['pretrain_final_mse'] for c in mine]):.5f} ({len(k)} seeds)"]
        if len(o) > 1 and len(k) > 1:
            se = np.sqrt(np.var(k, ddof=1) / len(k) + np.var(o, ddof=1) / len(o))
            lines.append(f"- ours: ACC {_mean_std(o)} ({len(o)} seeds); Keras − ours: {np.mean(k) - np.mean(o):+.4f} "
                         f"(standard error {se:.4f}; a seed draws different networks in the two frameworks, so "
                         f"the runs are compared as two samples, not paired)")
        lines.append("")
    return "\n".join(lines)


def read_ours(folders) -> dict:
    """``{(method, seed): acc}`` from the cross-implementation runner's ``jax x jax`` cells in
    ``folders`` (a folder, a list of them, or None). A folder that does not exist is an error, and so
    is one seed's cell found twice with different results."""
    if folders is None:
        return {}
    out = {}
    for folder in [folders] if isinstance(folders, (str, Path)) else folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--ours {folder}: no such folder")
        for p in sorted(Path(folder).glob("*-jax-jax-s*.json")):
            c = json.loads(p.read_text())
            key, acc = (c["method"], int(c["seed"])), float(c["acc"])
            if key in out and out[key] != acc:
                raise ValueError(f"{p}: {key} is also in another --ours folder with ACC {out[key]:.4f}")
            out[key] = acc
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--ours", type=Path, nargs="+", default=None,
                    help="the cross-implementation runner's cells folder(s), for our jax x jax cells")
    ap.add_argument("--pretrain-epochs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads")
    ap.add_argument("--write-fixture", type=Path, default=None,
                    help="write the converter's test data (a small network on 8 USPS images) here and stop")
    args = ap.parse_args(argv)
    if args.pretrain_epochs < 1:
        ap.error("--pretrain-epochs must be at least 1")
    if args.out is None and args.write_fixture is None:
        ap.error("--out is required (or --write-fixture)")
    try:
        read_ours(args.ours)  # a wrong --ours fails now, not after the first cell
    except (OSError, ValueError) as e:
        ap.error(str(e))

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.write_fixture is not None:
        write_fixture(args.write_fixture, load_usps(args.data_root)[0][:8])
        return 0
    cells_dir = args.out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"run-{os.getpid()}.log"

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(log_path, "a") as f:
            f.write(line + "\n")

    def report() -> None:
        cells = [json.loads(p.read_text()) for p in sorted(cells_dir.glob("*.json"))]
        text = markdown(cells, read_ours(args.ours))
        tmp = args.out / "keras_reference.md.tmp"
        tmp.write_text(text + "\n")
        os.replace(tmp, args.out / "keras_reference.md")

    x, y = load_usps(args.data_root)
    for m in args.methods:
        for s in args.seeds:
            path = cells_dir / f"{m}-keras-s{s}.json"
            if path.is_file():
                done = json.loads(path.read_text())
                if done.get("pretrain_epochs") != args.pretrain_epochs:
                    raise SystemExit(f"{path} was run with {done.get('pretrain_epochs')} pretraining epochs, not "
                                     f"{args.pretrain_epochs}: use another --out")
                log(f"{path.name}: done already")
                continue
            cell = run_cell(m, s, x, y, args.out / "params", args.pretrain_epochs, log)
            if args.pretrain_epochs != 200:
                cell["note"] = "short pretraining (smoke run)"
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(cell, indent=1))
            os.replace(tmp, path)
            log(f"{path.name}: ACC {cell['acc']:.4f} NMI {cell['nmi']:.4f} ({cell['n_refreshes']} refreshes, "
                f"pretrain {cell['pretrain_s']:.0f} s, cluster {cell['cluster_s']:.0f} s)")
            report()
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
