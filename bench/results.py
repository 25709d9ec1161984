"""What every benchmark module hands to the report: figures paired with their baselines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bench.stats import Spread

Measure = Literal["value", "ratio", "difference"]


@dataclass(frozen=True)
class Target:
    """A bound on one measure of a figure, checked on the median round."""

    measure: Measure
    operator: Literal[">=", "<="]
    bound: float
    unit: str = ""

    def met_by(self, amount: float) -> bool:
        return amount >= self.bound if self.operator == ">=" else amount <= self.bound

    def describe(self) -> str:
        prefix = {"value": "", "ratio": "ratio ", "difference": "vs baseline "}[self.measure]
        sign = "+" if self.measure == "difference" and self.bound >= 0 else ""
        suffix = "x" if self.measure == "ratio" else (f" {self.unit}" if self.unit else "")
        return f"{prefix}{self.operator} {sign}{self.bound:g}{suffix}"


@dataclass(frozen=True)
class Figure:
    """One line of the report.

    Rounds are paired: round i of the figure and round i of its baseline ran back to
    back, so `ratio` and `difference` are per-round comparisons, and drift on a
    shared machine hits both sides alike.
    """

    section: str
    name: str
    unit: str
    values: Sequence[float]
    baseline_name: str = ""
    baselines: Sequence[float] = ()
    target: Target | None = None
    higher_is_better: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> Spread:
        return Spread.of(self.values)

    @property
    def baseline(self) -> Spread | None:
        return Spread.of(self.baselines) if self.baselines else None

    @property
    def ratio(self) -> Spread | None:
        pairs = list(zip(self.values, self.baselines, strict=False))
        if not pairs or any(base == 0 for _, base in pairs):
            return None
        return Spread.of([value / base for value, base in pairs])

    @property
    def difference(self) -> Spread | None:
        pairs = list(zip(self.values, self.baselines, strict=False))
        return Spread.of([value - base for value, base in pairs]) if pairs else None

    def measured(self, measure: Measure) -> Spread | None:
        if measure == "value":
            return self.value
        return self.ratio if measure == "ratio" else self.difference

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        spread = self.measured(self.target.measure)
        return None if spread is None else self.target.met_by(spread.median)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["values"], data["baselines"] = list(self.values), list(self.baselines)
        data["met"] = self.met
        for measure in ("value", "ratio", "difference"):
            spread = self.measured(measure)
            data[f"{measure}_spread"] = asdict(spread) if spread else None
        return data
