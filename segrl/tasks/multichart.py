"""Multi-chart long-form QA from MultiChartQA (stub: being written)."""
from segrl.tasks.base import TaskSpec


def build(source, out_dir, **options):  # pragma: no cover - placeholder
    raise NotImplementedError


TASK = TaskSpec(name="multichart", version=1, build=build, segment_reward="accuracy", eval_metrics=("accuracy",))
