"""Settings of the paper as data: skip-weight presets, defaults and published numbers."""
from __future__ import annotations

# (w_enc, w_dec) of the two weighted additive skips; None = no skips (DEKM's CAE).
# "swapped" is our default: 0.001 on the encoder feature, 0.999 on the decoder feature. The
# paper's text reads the other way round ("paper-text"); measured, that reading lets the
# reconstruction bypass the embedding (see README, "Which skip weight goes where").
SKIP_PRESETS: dict[str, tuple[float, float] | None] = {
    "swapped": (0.001, 0.999),
    "paper-text": (0.999, 0.001),
    "none": None,
}
DEFAULT_SKIPS = "swapped"

# The paper's protocol (Section 4): pretraining and clustering phase.
PAPER_PROTOCOL = dict(
    pretrain_epochs=200,   # Adam, lr 1e-3, b1 0.9, b2 0.999
    batch_size=256,
    learning_rate=1e-3,
    steps_per_iter=40,     # DEKM's update interval
    max_iters=1000,
    tol=0.001,             # stop when < 0.1% of the points change cluster
)

# Published results (ACC, NMI). Only numbers we have a source for; None = not transcribed yet.
PAPER_RESULTS: dict[str, dict[str, tuple[float, float] | None]] = {
    # SDEKC paper, Table 3.
    "sdekc": {"usps": (0.8035, 0.8205), "mnist": None, "fashion-mnist": None, "coil20": None, "frgc": None},
    # DEKM paper (Guo et al.), as cited in the SDEKC paper.
    "dekm": {"usps": (0.7975, 0.8223), "mnist": None, "fashion-mnist": None, "coil20": None, "frgc": None},
}
