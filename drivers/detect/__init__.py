"""Detection backends: turn docking and undocking into events."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass

from drivers.base import DockedDevice


@dataclass(frozen=True)
class Attached:
    device: DockedDevice


@dataclass(frozen=True)
class Detached:
    slot: int


@dataclass(frozen=True)
class DetectProblem:
    """Something is docked but cannot be described (e.g. unreadable sim folder)."""

    slot: int
    message: str


DetectEvent = Attached | Detached | DetectProblem


class Detector(abc.ABC):
    """Yields events forever; the first events describe what is already docked
    at start (a station that boots with recorders in it serves them)."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[DetectEvent]: ...
