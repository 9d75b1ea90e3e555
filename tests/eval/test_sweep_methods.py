"""Method-comparison tables (SAPO, SRPO, Dr. Seg): rows = experiment arm, paired gains by seed."""

import pandas as pd

from segrl.eval.sweep import write_methods


def frame():
    rows = []
    for arm, base in (("drseg", 0.5), ("vision_reasoner", 0.3)):
        for seed, noise in ((0, 0.0), (1, 0.1)):
            rows.append({"algo": arm, "arm": arm, "seed": seed, "K": 2, "alpha": None, "task": "grounding v1",
                         "data": "f", "commit": "abc", "run": f"runs/{arm}/seed{seed}", "giou": base + noise})
    return pd.DataFrame(rows)


def test_write_methods_table_gains_and_plot(tmp_path):
    files = write_methods(frame(), ["giou"], tmp_path, title="t", command="segrl report drseg",
                          pairs=[("drseg", "vision_reasoner")], notes=["a note"])
    table = pd.read_csv(files["csv"])
    assert list(table["arm"]) == ["drseg", "vision_reasoner"]
    # drseg: 0.5, 0.6 -> mean 0.55, sample std 0.0707; vision_reasoner: 0.3, 0.4 -> 0.35
    assert table.loc[0, "K=2 giou"] == "0.5500 ± 0.0707 (2)"
    assert table.loc[1, "K=2 giou"] == "0.3500 ± 0.0707 (2)"
    md = files["md"].read_text()
    assert "| drseg − vision_reasoner | giou | +0.2000 ± 0.0000 | 2 |" in md  # paired by seed: 0.2 both times
    assert "- a note" in md and files["png"].stat().st_size > 1000
