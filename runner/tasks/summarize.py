"""`summarize`: the course's website summary. Items are URLs; the prompt holds the page's title and text.

The task's `user` template gets the fields `title`, `text` and `url` (plus the item's own fields).
"""
from __future__ import annotations

from runner.tasks.base import Cell, Session
from runner.tasks.pages import PageTask
from runner.tasks.web import PageError


class Summarize(PageTask):
    provides = frozenset({"url", "title", "text"})

    async def run(self, cell: Cell, session: Session) -> None:
        try:
            page = await self.page(cell, session)
        except PageError as exc:
            session.fail(cell, str(exc))
            return
        text, note = self.cut(page.text)
        fields = {**cell.item, "url": page.url, "title": page.title, "text": text}
        await self.answer(session, cell, self.messages(fields), note=note, details={"final_url": page.final_url})
