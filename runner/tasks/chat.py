"""`chat`: a scripted multi-turn chat, as the course's chatbot ran it: each turn sends the whole history.

Each item holds `messages`, the user's lines in order. Turn N sends the system prompt, every earlier
user line with the model's answer to it, then line N; it is recorded with step `turn-N`. A failed turn
ends that chat, since every later turn would need its answer.
"""
from __future__ import annotations

from runner.calls import chat
from runner.errors import ConfigError
from runner.tasks.base import Cell, Session, Task, Template


class Chat(Task):
    multi_step = True
    takes_images = False  # its prompts are pages or conversations, not an item's images
    options: dict = {}  # none of its own (not the single-call task's max_image_bytes)

    def templates(self) -> list[Template]:
        return [self.system_template()]  # the user's lines are sent as written

    def check(self) -> None:
        for i, item in enumerate(self.settings.inputs):
            lines = item.get("messages")
            if not isinstance(lines, list) or not lines or not all(isinstance(m, (str, int, float)) for m in lines):
                raise ConfigError(f"task.inputs[{i}]: 'messages' must be a non-empty list of the user's lines")
        super().check()

    async def run(self, cell: Cell, session: Session) -> None:
        history = chat(self.system_prompt(fields=cell.item))
        for turn, line in enumerate(cell.item["messages"], start=1):
            history.append({"role": "user", "content": str(line)})
            answer = await self.answer(session, cell, list(history), step=f"turn-{turn}")
            if not answer.ok:
                return
            history.append({"role": "assistant", "content": answer.text})
