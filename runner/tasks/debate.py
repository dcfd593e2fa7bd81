"""`debate`: the course's adversarial conversation between the swept model and an opponent model.

Each round the swept model speaks first, then the opponent (`task.opponent`, a model config name from
conf/model/ or the user's --config-dir). Each has its own system prompt (`task.system`, shaped by the
prompt variant, and `task.opponent_system`) and sees its own lines as the assistant's and the other's
as the user's. Every turn is a row: step `turn-N-model` or `turn-N-opponent`, the opponent's rows with the
opponent's name in the `model` column, and `speaker` and `side` in the record's details.
"""
from __future__ import annotations

import copy
import functools
import re
from typing import Any

from runner.errors import ConfigError, one_line
from runner.settings import ModelSettings, model_settings
from runner.tasks.base import Cell, Session, Task, Template, fill

NAME = re.compile(r"^[\w.\-/]+$")


def compose_model(name: str, where: str = "task.opponent") -> ModelSettings:
    """A model config by name, composed by Hydra from the same search path as the run's own model.
    `where` names the setting that gave the name (a debate's opponent, a scorer's judges)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if not NAME.match(name):
        raise ConfigError(f"{where}={name!r} is not a model config name")
    if not GlobalHydra.instance().is_initialized():
        raise ConfigError(f"{where} needs Hydra's config search path: run through `python -m runner`")
    searched = tuple(source.full_path() for source in GlobalHydra.instance().config_loader().get_sources())
    try:
        raw = copy.deepcopy(_composed(name, searched))
    except MissingConfigException:
        known = GlobalHydra.instance().config_loader().get_group_options("model")
        raise ConfigError(f"{where}={name!r} is not a model config (available: {', '.join(known)})") from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{where}={name!r}: {one_line(exc)}") from None
    return model_settings(raw, name)


@functools.lru_cache(maxsize=64)
def _composed(name: str, searched: tuple[str, ...]) -> dict:
    """conf/model/NAME.yaml composed from the search path `searched`: once per process, not once per job
    and check (a 12-job sweep with a judge asked for it 24 times, at 0.1 s of CPU each)."""
    from hydra import compose
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose(config_name=None, overrides=[f"+model={name}"]).model, resolve=True)


class Debate(Task):
    multi_step = True
    takes_images = False  # its prompts are pages or conversations, not an item's images
    options: dict[str, Any] = {
        "opponent": None,  # a model config name: conf/model/<name>.yaml
        "opponent_system": None,  # the opponent's system prompt
        "turns": 3,  # rounds; each round the swept model speaks, then the opponent
    }

    def __init__(self, run) -> None:
        super().__init__(run)
        self._opponent: ModelSettings | None = None

    @property
    def opponent_name(self) -> str:
        return str(self.opts["opponent"] or "")

    def opponent_models(self) -> dict[str, ModelSettings]:
        if self._opponent is None:
            self._opponent = compose_model(self.opponent_name)
        return {self.opponent_name: self._opponent}

    def templates(self) -> list[Template]:
        return [self.system_template(), Template("task.opponent_system", self.opts["opponent_system"])]

    def check(self) -> None:
        turns = self.opts["turns"]
        if isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
            raise ConfigError(f"task.turns={turns!r} must be a whole number >= 1")
        if not self.opponent_name:
            raise ConfigError("task.opponent is required for kind debate: a model config name, e.g. task.opponent=gpt")
        if not isinstance(self.opts["opponent_system"], str):
            raise ConfigError("task.opponent_system is required for kind debate (see conf/task/debate.yaml)")
        super().check()
        opponent = self.opponent_models()[self.opponent_name]
        if self.run_settings.temperature > opponent.temperature_max:
            raise ConfigError(f"temperature={self.run_settings.temperature:g} is out of range for the opponent "
                              f"{opponent.name} ({opponent.provider} accepts 0 to {opponent.temperature_max:g})")

    async def run(self, cell: Cell, session: Session) -> None:
        mine = [str(cell.item.get("opener", "Hi there"))]
        theirs = [str(cell.item.get("reply", "Hi"))]
        my_system = self.system_prompt(fields=cell.item)
        their_system = fill(self.opts["opponent_system"], cell.item)
        for turn in range(1, int(self.opts["turns"]) + 1):
            history = [{"role": "system", "content": my_system}]
            for said, heard in zip(mine, theirs):
                history += [{"role": "assistant", "content": said}, {"role": "user", "content": heard}]
            answer = await self.answer(session, cell, history, step=f"turn-{turn}-model",
                                       details=self._details("model", self.run_settings.model.name, turn))
            if not answer.ok:
                return
            mine.append(answer.text)

            history = [{"role": "system", "content": their_system}]
            for said, heard in zip(mine, theirs):
                history += [{"role": "user", "content": said}, {"role": "assistant", "content": heard}]
            history.append({"role": "user", "content": mine[-1]})
            answer = await self.answer(session, cell, history, step=f"turn-{turn}-opponent", model=self.opponent_name,
                                       details=self._details("opponent", self.opponent_name, turn))
            if not answer.ok:
                return
            theirs.append(answer.text)

    def _details(self, side: str, speaker: str, turn: int) -> dict:
        return {"side": side, "speaker": speaker, "turn": turn,
                "against": self.opponent_name if side == "model" else self.run_settings.model.name}
