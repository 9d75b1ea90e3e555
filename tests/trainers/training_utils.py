"""Helpers shared by the trainer tests (imported as ``training_utils``: pytest puts this folder on sys.path)."""

from transformers import TrainerCallback


def text_length(predictions, references):
    """A segment reward that needs no references: the prediction's length, capped at 10 characters, over 10."""
    return [min(len(p), 10) / 10 for p in predictions]


class KillAt(TrainerCallback):
    """Stops training after step n, as a pre-empted job would (after its last checkpoint)."""

    def __init__(self, n):
        self.n = n

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.n:
            control.should_training_stop = True
