"""The chat's pages, in Gradio (the optional extra `ui`): the course's ChatInterface for one model, and the
arena, two anonymous models side by side with a vote.

Replies stream: the model's pieces are collected as they arrive and the page is updated a few times a
second. Each turn sends the whole conversation (the chat's history, as the course's chatbot did; a turn
that failed is left out of it).

Model output is untrusted. It is shown as report.html shows it: rendered from markdown and sanitized in
Python (runner.analysis.markup), so HTML in an answer is text and an image is a link (an answer cannot
make the page load a URL of its choosing); the chatbots take that HTML as it is (render_markdown off),
through Gradio's own sanitizer on top. The chat keeps each answer's text beside the HTML it showed, and
sends the text, not the HTML, as history.
"""
from __future__ import annotations

import asyncio
import html
import random

import gradio as gr

from runner.chat.session import ChatSession, Turn

REFRESH_S = 0.05  # how often a streaming reply is redrawn
WINNERS = {"vote-a": "a", "vote-b": "b", "vote-tie": "tie", "vote-both-bad": "both_bad"}
HIDDEN = "Tokens, cost and seconds: shown with the names, after your vote."
VOTE_LABELS = {"vote-a": "A is better", "vote-b": "B is better", "vote-tie": "Tie", "vote-both-bad": "Both are bad"}


def text_of(content) -> str:
    """A chat message's text, whatever shape Gradio gives it (a string, or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, (list, tuple)):
        return "".join(text_of(part) for part in content)
    return "" if content is None else str(content)


def history_of(chat: list, said: dict[str, str | None]) -> list[dict]:
    """The conversation as the model is sent it: user and assistant turns, each answer as the text the
    model gave (`said`: the HTML shown -> that text, None for a turn that failed, which is left out)."""
    messages: list[dict] = []
    for entry in chat or []:
        role = entry.get("role") if isinstance(entry, dict) else getattr(entry, "role", None)
        content = text_of(entry.get("content") if isinstance(entry, dict) else getattr(entry, "content", ""))
        if role == "assistant":
            content = said.get(content.strip(), content)  # Gradio keeps the HTML without its last newline
            if content is None:
                if messages and messages[-1]["role"] == "user":
                    messages.pop()  # the question that got no answer goes too
                continue
        if role in ("user", "assistant"):
            messages.append({"role": role, "content": content})
    return messages


def html_of(text: str) -> str:
    """An answer (whole or so far) as the chatbot shows it: rendered and sanitized."""
    from runner.analysis.markup import answer_html

    return answer_html(text)


def shown(turn: Turn) -> str:
    return html_of(turn.text) if turn.ok else f"<p><strong>Error:</strong> {html.escape(turn.error)}</p>"


def turns_table(turns: list[tuple[int, Turn]]) -> str:
    """Tokens in and out, cost and seconds per turn, and the conversation's total."""
    from runner.money import dollars as usd

    if not turns:
        return ""
    lines = ["| turn | in | out | cost | s | first token s |", "|---:|---:|---:|---:|---:|---:|"]
    for number, turn in turns:
        lines.append(f"| {number} | {_n(turn.input_tokens)} | {_n(turn.output_tokens)} | {usd(turn.cost_usd)} | "
                     f"{_s(turn.latency_s)} | {_s(turn.ttft_s)} |")
    costs = [t.cost_usd for _, t in turns if t.cost_usd is not None]
    total = usd(sum(costs)) if costs else "n/a"
    return "\n".join(lines) + f"\n\nThis conversation: {total}."


def _n(value) -> str:
    return "" if value is None else str(value)


def _s(value) -> str:
    return "" if value is None else f"{value:.2f}"


async def streamed(session: ChatSession, asks: list[tuple[int, list[dict]]], item: str, turn: int):
    """Ask each (contestant, messages) at once; yield the texts so far while they stream, then the turns."""
    loop = asyncio.get_running_loop()
    texts = ["" for _ in asks]
    arrived: asyncio.Queue = asyncio.Queue()

    def listener(slot: int):
        # the embedded model's pieces come from a worker thread
        return lambda piece: loop.call_soon_threadsafe(arrived.put_nowait, (slot, piece))

    tasks = [asyncio.ensure_future(session.reply(index, messages, item, turn, listener(slot)))
             for slot, (index, messages) in enumerate(asks)]
    try:
        while not all(task.done() for task in tasks):
            await asyncio.sleep(REFRESH_S)
            changed = False
            while not arrived.empty():
                slot, piece = arrived.get_nowait()
                texts[slot] += piece
                changed = True
            if changed:
                yield list(texts), None
        yield list(texts), [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()


def chat_app(session: ChatSession) -> gr.Blocks:
    """One model: the course's ChatInterface, with cost and tokens per turn beside it."""
    contestant = session.contestants[0]
    run = contestant.run

    async def respond(message, history, state):
        state = dict(state or {})
        if not history or state.get("item") is None:  # a new (or cleared) chat is a new conversation
            state = {"item": session.new_conversation(), "turns": [], "said": {}}
        past = history_of(history, state["said"])
        turn = sum(1 for m in history or [] if (m.get("role") if isinstance(m, dict) else None) == "user") + 1
        messages = session.messages(0, past, text_of(message))
        async for texts, done in streamed(session, [(0, messages)], state["item"], turn):
            if done is None:
                yield html_of(texts[0]), gr.skip(), state
            else:
                answer = shown(done[0])
                state["said"] = {**state["said"], answer.strip(): done[0].text if done[0].ok else None}
                state["turns"] = state["turns"] + [(turn, done[0])]
                yield answer, turns_table(state["turns"]), state

    with gr.Blocks(title=f"runner.chat: {run.model.name}", analytics_enabled=False) as app:
        state = gr.State(None)
        usage = gr.Markdown(elem_id="turns", render=False)
        gr.ChatInterface(
            respond, title=f"Chat with {run.model.name}",
            description=(f"{run.model.provider} · {run.model.id} · prompt {run.prompt.name} · "
                         f"T={run.temperature:g} · conversations are saved in {session.folder}"),
            chatbot=gr.Chatbot(elem_id="chat", height=440, allow_tags=False, sanitize_html=True,
                               render_markdown=False),
            textbox=gr.Textbox(elem_id="message", placeholder="Type a message and press Enter", scale=7),
            additional_inputs=[state], additional_outputs=[usage, state], analytics_enabled=False)
        usage.render()
    return app


def arena_app(session: ChatSession) -> gr.Blocks:
    """Two anonymous contestants answer each message side by side; a person votes, then sees who was who, and
    each side's tokens, cost and seconds (before the vote they would tell the providers apart)."""

    def fresh() -> dict:
        order = [0, 1]
        random.shuffle(order)  # which contestant is A is a coin toss, per conversation
        return {"item": session.new_conversation(), "order": order, "history": [[], []], "shown": [[], []],
                "turns": [[], []], "turn": 0, "voted": False}

    def buttons(active: bool):
        return [gr.update(interactive=active) for _ in WINNERS]

    async def ask(message, state):
        state = state or fresh()
        message = text_of(message).strip()
        if not message or state["voted"]:
            yield (gr.skip(),) * 4 + tuple(gr.skip() for _ in WINNERS) + (gr.skip(), state, gr.skip())
            return
        state["turn"] += 1
        for side in (0, 1):
            state["shown"][side] = state["shown"][side] + [{"role": "user", "content": html_of(message)},
                                                           {"role": "assistant", "content": ""}]
        asks = [(state["order"][side], session.messages(state["order"][side], state["history"][side], message))
                for side in (0, 1)]
        async for texts, done in streamed(session, asks, state["item"], state["turn"]):
            for side in (0, 1):
                state["shown"][side][-1] = {"role": "assistant", "content": html_of(texts[side]) if done is None
                                            else shown(done[side])}
            if done is None:
                yield (state["shown"][0], state["shown"][1], gr.skip(), gr.skip(), *buttons(False), gr.skip(),
                       state, "")
                continue
            for side in (0, 1):
                state["turns"][side] = state["turns"][side] + [(state["turn"], done[side])]
                if done[side].ok:
                    state["history"][side] = state["history"][side] + [
                        {"role": "user", "content": message}, {"role": "assistant", "content": done[side].text}]
            # tokens, cost and seconds wait for the vote with the names: a price or a speed tells a provider
            yield (state["shown"][0], state["shown"][1], HIDDEN, HIDDEN, *buttons(True),
                   "Which answer is better? Vote, then see who was who.", state, "")

    def vote_with(button: str):
        def vote(state):
            if not state or state["voted"] or not state["turn"]:
                return (*buttons(False), gr.skip(), gr.skip(), gr.skip(), state, gr.skip(), gr.skip())
            a, b = state["order"]
            session.vote(state["item"], state["turn"], a, b, WINNERS[button])
            state = {**state, "voted": True}
            said = {"a": "You voted A.", "b": "You voted B.", "tie": "You voted: a tie.",
                    "both_bad": "You voted: both are bad."}[WINNERS[button]]
            reveal = (f"{said} **A** was {session.contestants[a].label}; **B** was {session.contestants[b].label}. "
                      f"Start a new round for the next vote.")
            return (*buttons(False), reveal, turns_table(state["turns"][0]), turns_table(state["turns"][1]), state,
                    gr.update(interactive=False), gr.update(interactive=False))
        return vote

    def new_round(state):
        return ([], [], "", "", *buttons(False), "", fresh(), gr.update(value="", interactive=True),
                gr.update(interactive=True))

    with gr.Blocks(title="runner.chat arena", analytics_enabled=False) as app:
        gr.Markdown(f"# Arena\nTwo anonymous models answer each message; vote for the better answer. "
                    f"Contestants: {len(session.contestants)} (revealed after your vote). Votes are saved in "
                    f"{session.folder} and the history.")
        state = gr.State(None)
        with gr.Row():
            with gr.Column():
                bot_a = gr.Chatbot(label="Model A", elem_id="model-a", height=380, allow_tags=False, sanitize_html=True,
                                   render_markdown=False)
                usage_a = gr.Markdown(elem_id="turns-a")
            with gr.Column():
                bot_b = gr.Chatbot(label="Model B", elem_id="model-b", height=380, allow_tags=False, sanitize_html=True,
                                   render_markdown=False)
                usage_b = gr.Markdown(elem_id="turns-b")
        with gr.Row():
            box = gr.Textbox(elem_id="message", placeholder="Type a message and press Enter", show_label=False, scale=6)
            send = gr.Button("Send", elem_id="send", variant="primary", scale=1)
        with gr.Row():
            votes = [gr.Button(VOTE_LABELS[key], elem_id=key, interactive=False) for key in WINNERS]
        reveal = gr.Markdown(elem_id="reveal")
        again = gr.Button("New round", elem_id="new-round")
        outputs = [bot_a, bot_b, usage_a, usage_b, *votes, reveal, state, box]
        for trigger in (send.click, box.submit):
            trigger(ask, [box, state], outputs)
        for key, button in zip(WINNERS, votes):
            button.click(vote_with(key), [state], [*votes, reveal, usage_a, usage_b, state, box, send])
        again.click(new_round, [state], [*outputs, send])
        app.load(fresh, None, [state])
    return app
