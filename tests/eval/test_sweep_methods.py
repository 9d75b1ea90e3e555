"""Method-comparison tables (SAPO, SRPO, Dr. Seg): rows = experiment arm, paired gains by seed."""

import pandas as pd
import pytest
from runs import sft_eval, trained

from segrl.eval.tables import load_spec, make_table


def test_methods_table_gains_gate_and_plot(tmp_path):
    root = tmp_path / "runs" / "drseg"
    sft_eval(root / "sft" / "eval", 2, {"giou": 0.2, "count_accuracy": 0.5, "iou": 0.1, "vr_accuracy": 1.0},
             task="grounding")
    for arm, base in (("drseg", 0.5), ("vision_reasoner", 0.3)):
        for seed, noise in ((0, 0.0), (1, 0.1)):
            trained(root / arm / f"seed{seed}", "drseg", seed, 2,
                    {"giou": base + noise, "count_accuracy": 0.5, "iou": 0.1, "vr_accuracy": 1.0},
                    task="grounding")
    files = make_table(load_spec("drseg"), [str(root)], tmp_path / "out", command="segrl report drseg")
    table = pd.read_csv(files["csv"])
    assert list(table["arm"]) == ["(init)", "drseg", "vision_reasoner"]
    # drseg: 0.5, 0.6 -> mean 0.55, sem 0.05, t_{0.975,1} = 12.706205
    assert table.loc[1, "K=2 giou"] == "0.5500 [-0.0853, 1.1853] (n=2†)"
    md = files["md"].read_text()
    assert "| drseg − vision_reasoner | giou | 2 | +0.2000 [0.2000, 0.2000] (n=2†) |  |" in md  # 0.2 both seeds
    # the gate's baseline here is vision_reasoner: 0.3, 0.4 over the SFT start 0.2 -> +0.15 [-0.4853, 0.7853]
    assert "(vision_reasoner − its SFT start, giou, paired per K): K=2 +0.1500 [-0.4853, 0.7853] (n=2†)" in md
    assert "Gate **failed**" in md and "**Verdict: uninformative**" in md
    assert "- giou: mean per-image IoU" in md and files["methods.png"].stat().st_size > 1000


def test_a_glob_in_runs_takes_only_the_evals_it_names(tmp_path):
    from runs import eval_dir

    from segrl.eval.report import find_eval_dirs

    root = tmp_path / "runs" / "table2" / "k4"
    for algo in ("grpo", "sd_grpo"):
        run = trained(root / algo / "seed0", algo, 0, 4, {"accuracy": 0.5}, task="charts")
        eval_dir(run / "eval-real", run, "multichart", 4, {"accuracy": 0.01})  # another eval beside it
    assert find_eval_dirs([root / "*" / "seed*" / "eval"]) == [root / "grpo/seed0/eval", root / "sd_grpo/seed0/eval"]
    assert len(find_eval_dirs([root])) == 4  # a plain directory: every eval below it
    with pytest.raises(FileNotFoundError, match=r"no eval run matches .*dr_grpo"):
        find_eval_dirs([root / "dr_grpo" / "seed*" / "eval"])


def test_a_linked_sft_start_is_found_once_and_a_link_cycle_ends(tmp_path):
    """A pilot's run directory may link a shared SFT start (`runs/pilot/sft -> ../start/sft`): its eval is found
    under the link's path (Path.rglob missed it, so `segrl report` said the gate had no SFT-start eval)."""
    from runs import eval_dir

    from segrl.eval.report import find_eval_dirs

    start = tmp_path / "runs" / "start" / "sft"
    start.mkdir(parents=True)
    eval_dir(start / "eval", start, "grounding", 1, {"giou": 0.2})
    pilot = tmp_path / "runs" / "pilot"
    run = trained(pilot / "vision_reasoner" / "seed0", "vision_reasoner", 0, 1, {"giou": 0.3}, task="grounding")
    (pilot / "sft").symlink_to("../start/sft", target_is_directory=True)
    (run / "loop").symlink_to("..", target_is_directory=True)  # a cycle: must not be walked forever
    assert find_eval_dirs([pilot]) == [pilot / "sft" / "eval", pilot / "vision_reasoner" / "seed0" / "eval"]
