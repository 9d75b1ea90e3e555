"""Prompt edits a trainer applies at generation time (neutral: tasks and trainers both use them).

A trainer that asks the policy for more than the task's prompt states (SRPO's structure, Dr. Seg's
Look-to-Confirm blocks) appends one instruction to the prompt here, so no trainer imports a task
module and the dataset on disk stays the same for every algorithm.
"""

from __future__ import annotations

import copy

LOOK_INSTRUCTION = (
    "Inside the reasoning, enclose the parts where you check something in the image in one or more "
    "<look> </look> blocks, e.g. <think> [your reasoning text] <look> [your visual focus] </look> "
    "[more reasoning text] </think>."
)
"""Dr. Seg's Look-to-Confirm instruction (``rl_dataset.py``), with its format example; the
placeholder phrases in it are what the non-repeat reward refuses to see copied."""


def add_look_to_confirm(prompt: list[dict]) -> list[dict]:
    """A copy of a TRL conversational ``prompt`` whose last text block ends with :data:`LOOK_INSTRUCTION`.

    Unchanged when some text block already mentions ``<look>``. On this task's plain prompt the
    result equals the Look-to-Confirm prompt of the same row.

    Raises:
        ValueError: the prompt has no text block.
    """
    texts = [(i, j) for i, m in enumerate(prompt) for j, b in enumerate(m.get("content") or [])
             if isinstance(b, dict) and b.get("type") == "text"]
    if not texts:
        raise ValueError("add_look_to_confirm: the prompt has no text block")
    if any("<look>" in (prompt[i]["content"][j].get("text") or "") for i, j in texts):
        return prompt
    i, j = texts[-1]
    out = [dict(m, content=[dict(b) for b in m["content"]]) if k == i else m for k, m in enumerate(prompt)]
    out[i]["content"][j]["text"] = f"{out[i]['content'][j]['text']}\n{LOOK_INSTRUCTION}"
    return out


def add_structure_instruction(prompt, instruction: str):
    """A copy of ``prompt`` with ``instruction`` appended on a new line to its last user text.

    Args:
        prompt: a string, or TRL conversational messages (``[{"role", "content"}]`` where
            content is a string or ``[{"type": "image"|"text", "text": ...}]`` blocks).
        instruction: the sentence to add; ``""`` returns the prompt unchanged.

    Returns:
        The new prompt (the input is not modified). With content blocks, the last text block
        of the last user message grows; a message without a text block gets one appended.

    Raises:
        ValueError: a conversational prompt has no user message.
    """
    if not instruction:
        return prompt
    if isinstance(prompt, str):
        return f"{prompt}\n{instruction}"
    messages = copy.deepcopy(list(prompt))
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ValueError(f"add_structure_instruction: the prompt has no user message: {prompt!r}")
    msg = users[-1]
    content = msg.get("content")
    if isinstance(content, str):
        msg["content"] = f"{content}\n{instruction}"
        return messages
    blocks = list(content or [])
    texts = [j for j, b in enumerate(blocks) if isinstance(b, dict) and b.get("type") == "text" and b.get("text")]
    if texts:
        j = texts[-1]
        blocks[j] = {**blocks[j], "text": f"{blocks[j]['text']}\n{instruction}"}
    else:
        blocks.append({"type": "text", "text": instruction})
    msg["content"] = blocks
    return messages
