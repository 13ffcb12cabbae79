"""``sidcec``: IDCEC on the CAE with the two weighted skips (the core's default weights).

``skips="paper-text"`` (or any ``(w_enc, w_dec)``) selects the other reading of the paper.
Runs with ``arch="binary"`` (Table 2).
"""
from ..config import DEFAULT_SKIPS
from .base import Method
from .idcec import METHOD as IDCEC

METHOD = Method(
    name="sidcec",
    description="IDCEC on the CAE with the two weighted skips",
    autoencoder="cae",
    clustering="dec",
    reconstruction=True,
    skips=DEFAULT_SKIPS,
    defaults=dict(IDCEC.defaults),
    archs=("default", "binary"),
)
