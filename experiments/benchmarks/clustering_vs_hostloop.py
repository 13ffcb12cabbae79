"""Target 3: the compiled clustering phase vs a host-loop reference written like the DEKM code.

Both sides run the same number of clustering iterations on the same data and encoder: embed all
data, K-means (n_init 10), the label-change count (Hungarian), S_w, eigh, greedy targets and
``steps_per_iter`` Adam steps on the encoder.

* JAX: the run's own clustering phase (``sdekc_jax.run.make_steps(cfg).advance``): the
  iterations inside one jitted ``lax.while_loop`` (the stop test switched off: ``tol=0``).
* Reference: a Python loop per iteration, as DEKM.py is written: embed with a jitted encoder in
  batches (``model.predict``), scikit-learn ``KMeans``, NumPy S_w / ``eigh`` / targets, then one
  jitted (donated) greedy step per mini-batch called from Python (``train_on_batch``).

Compile time is excluded on both sides (each is run once first) and reported separately.

    python experiments/benchmarks/clustering_vs_hostloop.py [--dataset usps] [--iters 5]
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_json  # noqa: E402
from sdekc_jax.config import RunConfig  # noqa: E402
from sdekc_jax.data import load_dataset  # noqa: E402
from sdekc_jax.metrics import count_changed  # noqa: E402
from sdekc_jax.pretrain import masked_mean  # noqa: E402
from sdekc_jax.run import make_steps  # noqa: E402
from sdekc_jax.transform import apply_transform  # noqa: E402


def run_jax(cfg, params, x, iters, seed):
    """``iters`` iterations of the run's clustering phase (``cfg.max_iters = iters + 1``, so none
    of them is the final, step-less one); returns (seconds, compile seconds)."""
    steps = make_steps(cfg)
    init, advance = jax.jit(steps.cluster_init), jax.jit(steps.advance)
    times = []
    for r in range(2):  # the first call compiles
        state = init(params, x, jax.random.key(seed + r))
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        state = advance(state, x, None, jnp.int32(iters))
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    assert int(state["iteration"]) == iters and np.all(np.isfinite(np.asarray(state["history"]["loss"][:iters])))
    return times[-1], times[0] - times[-1]


def run_reference(embed, params, x, k, iters, steps, batch_size, seed):
    tx = optax.adam(1e-3)
    embed_j = jax.jit(embed)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def greedy_step(p, opt_state, xb, tb, v):
        def loss_fn(p):
            y = apply_transform(v, embed(p, xb))
            return masked_mean(jnp.mean(jnp.square(y - tb), axis=1), jnp.ones(xb.shape[0]))

        loss, g = jax.value_and_grad(loss_fn)(p)
        updates, opt_state = tx.update(g, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    x_np = np.asarray(x)
    n = x_np.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    n_batches = -(-n // batch_size)
    times = []
    for r, n_it in enumerate((1, iters)):  # the first run compiles
        p = jax.tree.map(jnp.array, params)
        opt_state = tx.init(p)
        labels_old, step = None, 0
        t0 = time.perf_counter()
        for it in range(n_it):
            z = np.concatenate([np.asarray(embed_j(p, x[s:s + 1024])) for s in range(0, n, 1024)])
            km = KMeans(k, n_init=10, random_state=seed + it).fit(z)
            labels, centers = km.labels_, km.cluster_centers_
            if labels_old is not None:
                count_changed(labels_old, labels, k)  # the stop test's work (the count is not used)
            labels_old = labels
            res = z - centers[labels]
            _, evecs = np.linalg.eigh(res.T @ res)
            v = evecs.T.astype(np.float32)
            y = z @ v.T
            y[:, -1] = (centers @ v.T)[labels, -1]
            for _ in range(steps):
                b = order[(step % n_batches) * batch_size:(step % n_batches + 1) * batch_size]
                p, opt_state, loss = greedy_step(p, opt_state, x[b], jnp.asarray(y[b]), jnp.asarray(v))
                step += 1
            jax.block_until_ready(p)
        times.append(time.perf_counter() - t0)
    return times[-1], max(times[0] - times[-1] / iters, 0.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="usps")
    ap.add_argument("--data-dir")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--steps-per-iter", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the row to this JSON file")
    args = ap.parse_args(argv)
    x_np, y_true = load_dataset(args.dataset, args.data_dir)
    k = int(len(np.unique(y_true)))
    x = jnp.asarray(x_np, jnp.float32)
    cfg = RunConfig(n_clusters=k, image_shape=tuple(x.shape[1:]), pretrain_epochs=0, max_iters=args.iters + 1,
                    steps_per_iter=args.steps_per_iter, batch_size=args.batch_size, tol=0.0, kmeans_n_init=10)
    steps = make_steps(cfg)
    params = steps.init(jax.random.key(args.seed))
    tj, cj = run_jax(cfg, params, x, args.iters, args.seed)
    tr, cr = run_reference(steps.embed, params["encoder"], x, k, args.iters, args.steps_per_iter, args.batch_size,
                           args.seed)
    row = {"dataset": args.dataset, "n": int(x.shape[0]), "iters": args.iters, "steps_per_iter": args.steps_per_iter,
           "reference_s": tr, "jax_s": tj, "speedup": tr / tj, "jax_compile_s": cj, "reference_compile_s": cr,
           "jax_s_per_iter": tj / args.iters, "reference_s_per_iter": tr / args.iters}
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {args.dataset} n={row['n']}, {args.iters} iterations "
          f"x {args.steps_per_iter} steps")
    print("| data | host-loop reference s/iter | JAX s/iter | speed-up | JAX compile s |")
    print("|---|---|---|---|---|")
    print(f"| {args.dataset} | {row['reference_s_per_iter']:.3f} | {row['jax_s_per_iter']:.3f} | {row['speedup']:.2f}x | "
          f"{cj:.1f} |", flush=True)
    write_json(args.json, row)
    return row


if __name__ == "__main__":
    main()
