"""Data set loaders for the paper's benchmarks.

Every loader returns ``(x, y)`` as numpy arrays: images NHWC ``float32`` in ``[0, 1]`` and
``int32`` labels ``0..K-1``.  ``subset="all"`` is the training split followed by the test
split (the convention of the deep-clustering papers, which cluster both together).

Data sets without a train/test split (COIL-20, FRGC, seismic) only accept ``subset="all"``.

Modules: :mod:`.registry` (:data:`DATASETS`, :func:`load_dataset`), :mod:`.common`
(:class:`DatasetInfo`, :data:`KNOWN_SHA256`, the checks and errors every loader shares),
:mod:`.formats` (IDX, images through Pillow, resizing, MATLAB/HDF5 files) and one module per
data-set family: :mod:`.usps`, :mod:`.mnist` (MNIST and Fashion-MNIST), :mod:`.coil20`,
:mod:`.frgc`, :mod:`.seismic`.  This folder also holds the package data ``usps.npz`` (the
embedded USPS, see README.md here).

Adding a data set is one module with a loader function ``loader(data_dir: Path | None, subset:
str) -> (x, y)`` and its :class:`DatasetInfo`, listed in :data:`DATASETS` (and its checksums in
:data:`KNOWN_SHA256`); :func:`load_dataset` does the name/subset checks and the final conversion
and validation.

Images are decoded by Pillow; images that need resizing (COIL-20 to 28x28, FRGC images to 32x32)
go through :func:`resize_images`, a separable linear resampling in numpy: ``"bilinear"`` for
COIL-20 reproduces ``tf.image.resize(..., "bilinear")`` (half-pixel centres, no anti-aliasing),
the resize of the DEKM reference code; FRGC folder images use ``"area"`` (exact area averaging
when shrinking, bilinear when enlarging).  See :mod:`.formats` for why neither is Pillow's.
"""

from .coil20 import COIL20_SIZE
from .common import KNOWN_SHA256, SUBSETS, DatasetInfo
from .formats import read_idx, read_image, read_png, resize_images
from .frgc import FRGC_SIZE
from .mnist import DEBIAN_FASHION_MNIST_DIR, IDX_FILES
from .registry import DATASETS, load_dataset
from .usps import USPS_LIBSVM_FILES

__all__ = [
    "COIL20_SIZE", "DATASETS", "DEBIAN_FASHION_MNIST_DIR", "DatasetInfo", "FRGC_SIZE", "IDX_FILES", "KNOWN_SHA256",
    "SUBSETS", "USPS_LIBSVM_FILES", "load_dataset", "read_idx", "read_image", "read_png", "resize_images",
]
