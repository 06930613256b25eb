"""Stochastic weight averaging (Izmailov et al., 2018): the mean of the weights at the end of
each epoch of a constant-learning-rate tail appended to the schedule."""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """A running mean of a model's weights, one sample per `add`."""

    def __init__(self, state: dict[str, torch.Tensor] | None = None, count: int = 0) -> None:
        self.state = state
        self.count = count

    def add(self, model: torch.nn.Module) -> None:
        current = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
        if self.state is None:
            self.state, self.count = current, 1
            return
        self.count += 1
        for name, value in current.items():
            if value.is_floating_point():
                self.state[name] += (value - self.state[name]) / self.count
            else:
                self.state[name] = value

    def model_like(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of `model` holding the averaged weights."""
        averaged = copy.deepcopy(model)
        averaged.load_state_dict(self.state)
        return averaged

    def to_dict(self) -> dict:
        return {"state": self.state, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict | None) -> WeightAverage:
        return cls() if data is None else cls(data["state"], data["count"])
