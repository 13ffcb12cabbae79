"""experiments/table3.py: resumable cells, budget caps recorded, the Markdown report."""
import importlib.util
import json
from pathlib import Path

import pytest

from sdekc_jax.methods import get_method

spec = importlib.util.spec_from_file_location("table3", Path(__file__).resolve().parents[1] / "experiments" / "table3.py")
table3 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table3)


def test_budget_caps_bind_only_below_the_defaults():
    dec = get_method("dec")
    assert table3.budget_overrides(dec, "usps", 100, None) == {}                 # USPS pretrains 50 < 100
    assert table3.budget_overrides(dec, "usps", 10, 3000) == {"pretrain_epochs": 10, "max_iters": 101}
    assert table3.budget_overrides(get_method("sdekc"), "usps", None, 10 ** 6) == {}
    assert table3.budget_overrides(get_method("kmeans"), "usps", 1, 1) == {}


def test_cells_are_kept_and_skipped(tmp_path, monkeypatch):
    out = tmp_path / "t3"
    assert table3.main(["--datasets", "usps", "--methods", "kmeans", "--seeds", "0", "1", "--out", str(out)]) == 0
    cells = json.loads((out / "table3.json").read_text())["cells"]
    assert set(cells) == {"kmeans|usps|0", "kmeans|usps|1"}
    assert all(0.5 < c["acc"] < 0.8 and c["budget"] == "full" and not c["reduced_budget"] for c in cells.values())
    md = (out / "table3.md").read_text()
    assert "| usps | kmeans | 2 |" in md

    calls = []
    monkeypatch.setattr(table3, "run", lambda *a, **k: calls.append(a) or pytest.fail("finished cell recomputed"))
    assert table3.main(["--datasets", "usps", "--methods", "kmeans", "--seeds", "0", "1", "--out", str(out)]) == 0
    assert calls == []


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise FloatingPointError("loss became nan")

    monkeypatch.setattr(table3, "run", boom)
    out = tmp_path / "t3"
    assert table3.main(["--datasets", "usps", "--methods", "kmeans", "--seeds", "0", "1", "--out", str(out)]) == 0
    cells = json.loads((out / "table3.json").read_text())["cells"]
    assert len(cells) == 2 and all("loss became nan" in c["error"] for c in cells.values())
    assert "Failed cells" in (out / "table3.md").read_text()


def test_paper_table3_is_data_for_every_method_and_data_set():
    from sdekc_jax.config import PAPER_TABLE3, TABLE3_DATASETS
    from sdekc_jax.methods import METHODS
    assert set(PAPER_TABLE3) == set(METHODS)
    for m, row in PAPER_TABLE3.items():
        assert set(row) == set(TABLE3_DATASETS), m
        for v in row.values():
            assert v is None or (len(v) == 2 and all(0 < t < 1 for t in v))
    assert PAPER_TABLE3["sdekc"]["usps"] == (0.8035, 0.8205)
    md = table3.markdown({"dec|usps|0": {"method": "dec", "dataset": "usps", "seed": 0, "acc": 0.7, "nmi": 0.7,
                                         "ari": 0.6, "seconds": 1.0, "config": get_method("dec").config("usps"),
                                         "converged": True},
                          "sdekc|usps|0": {"method": "sdekc", "dataset": "usps", "seed": 0, "acc": 0.8, "nmi": 0.8,
                                           "ari": 0.7, "seconds": 1.0, "config": get_method("sdekc").config("usps"),
                                           "converged": True}})
    assert "| usps | dec | 1 | 0.7000 ± 0.0000" in md and "0.7368 / 0.7529 | -0.0368 |" in md
    assert "0.8035 / 0.8205 | -0.0035 |" in md


PAPER_TABLES = Path(__file__).resolve().parents[2] / "shared" / "paper" / "tables.md"
_NAMES = {"K-means": "kmeans", "AE+K-means": "ae-kmeans", "CAE+K-means": "cae-kmeans", "ARAE+K-means": "arae-kmeans",
          "DEC": "dec", "IDEC": "idec", "DCEC": "dcec", "DEKM": "dekm", "SDEKC": "sdekc", "IDCEC": "idcec",
          "SIDCEC": "sidcec"}


@pytest.mark.skipif(not PAPER_TABLES.exists(), reason="the paper's tables (../shared/paper/tables.md) are not beside the repo")
def test_every_cell_of_the_papers_tables_is_data():
    from sdekc_jax.config import PAPER_TABLE2, PAPER_TABLE3, paper_result
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in PAPER_TABLES.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    header3 = next(r for r in rows if r[0] == "method" and len(r) == 11)
    columns = [h.rsplit(" ", 1)[0] for h in header3[1::2]]
    loader = {"MNIST": "mnist", "Fashion-MNIST": "fashion-mnist", "USPS": "usps", "COIL-20": "coil20", "FRGC": "frgc"}
    seen = 0
    for r in rows:
        if r[0] == "method":
            continue
        m = _NAMES[r[0]]
        if len(r) == 3:  # Table 2
            assert PAPER_TABLE2[m]["seismic"] == (float(r[1]), float(r[2]))
            assert paper_result(m, "seismic") == ((float(r[1]), float(r[2])), "Table 2")
        else:
            for i, col in enumerate(columns):
                assert PAPER_TABLE3[m][loader[col]] == (float(r[1 + 2 * i]), float(r[2 + 2 * i])), (m, col)
        seen += len(r) // 2
    assert seen == 2 + 9 * 5  # every cell: Table 2's two rows, Table 3's nine rows of five data sets
    assert all(v is None for v in PAPER_TABLE3["idcec"].values())  # Table 3 has no IDCEC/SIDCEC row
    assert paper_result("idcec", "usps")[0] is None


def test_the_default_grid_covers_the_data_sets_found(tmp_path, monkeypatch):
    monkeypatch.setattr(table3, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    assert table3.available_datasets(None) == ["usps"]  # embedded
    (tmp_path / "coil20").mkdir()
    (tmp_path / "mnist").mkdir()
    (tmp_path / "seismic").mkdir()  # not a Table 3 data set
    assert table3.available_datasets(str(tmp_path)) == ["mnist", "usps", "coil20"]
    monkeypatch.setattr(table3, "DEBIAN_FASHION_MNIST_DIR", tmp_path)
    assert table3.available_datasets(None) == ["usps", "fashion-mnist"]


def test_cells_checkpoint_into_the_grid_folder_and_clean_up(tmp_path, monkeypatch):
    seen = []
    real = table3.run

    def spy(*a, **k):
        seen.append(k.get("checkpoint_dir"))
        return real(*a, **k)

    monkeypatch.setattr(table3, "run", spy)
    out = tmp_path / "t3"
    assert table3.main(["--datasets", "usps", "--methods", "kmeans", "--seeds", "0", "--out", str(out)]) == 0
    assert seen == [str(out / "checkpoints" / "kmeans-usps-0")]
    assert not (out / "checkpoints" / "kmeans-usps-0").exists()
