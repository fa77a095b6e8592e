"""How a prompt with chat context reads as plain text or as chat messages (reward model, export, TRL)."""

from __future__ import annotations


def render_prompt(text: str, context: list | None) -> str:
    """The text a reward model sees before a response: chat context (``role: content`` lines), then the prompt."""
    lines = []
    for turn in context or []:
        if isinstance(turn, dict) and turn.get("content"):
            lines.append(f"{turn.get('role', 'user')}: {turn['content']}")
    if not lines:
        return text
    return "\n".join([*lines, f"user: {text}"])


def prompt_messages(text: str, context: list | None) -> list[dict]:
    """The prompt as chat messages (TRL's conversational form): the context's turns, then the prompt as user."""
    messages = [
        {"role": str(turn.get("role", "user")), "content": str(turn["content"])}
        for turn in context or []
        if isinstance(turn, dict) and turn.get("content")
    ]
    return [*messages, {"role": "user", "content": text}]
