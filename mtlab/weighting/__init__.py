"""Gradient-combination strategies behind one small interface (`Weighting.backward`), usable by every
trainer in mtlab: `TrainConfig(weighting="pcgrad")`."""

from . import gradient_based, loss_based, pmtrec, torchjd_backend  # noqa: F401  (registers the strategies)
from .base import (
    STRATEGIES,
    GradientCombination,
    GramianCombination,
    LossWeighting,
    TableRows,
    Weighting,
)


def check_weighting_options(name: str, options: dict) -> None:
    """Refuse an unknown strategy, or an option its constructor does not take, naming the allowed ones."""
    import inspect

    if name not in STRATEGIES:
        raise ValueError(f"unknown weighting {name!r}; available: {', '.join(STRATEGIES)}")
    allowed = [
        p.name
        for p in list(inspect.signature(STRATEGIES[name].__init__).parameters.values())[2:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"weighting {name!r} has no option {', '.join(unknown)}; its options: {', '.join(allowed) or 'none'}"
        )


def build_weighting(name: str, n_tasks: int, **options) -> Weighting:
    check_weighting_options(name, options)
    try:
        return STRATEGIES[name](n_tasks, **options)
    except (TypeError, ValueError) as err:  # a value of the wrong type or range, said with the defaults
        import inspect

        defaults = ", ".join(
            f"{p.name}={p.default!r}"
            for p in list(inspect.signature(STRATEGIES[name].__init__).parameters.values())[2:]
            if p.default is not p.empty
        )
        raise ValueError(f"weighting {name!r} refused the options {options}: {err}; its defaults: {defaults}") from err


__all__ = [
    "STRATEGIES",
    "GradientCombination",
    "GramianCombination",
    "LossWeighting",
    "TableRows",
    "Weighting",
    "build_weighting",
    "check_weighting_options",
]
