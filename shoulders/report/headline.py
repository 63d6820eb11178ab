"""The report's first lines: how good the model is, on what data, trained how, in how long.

Each fact is read from the run folder's files as written by ``shoulders train`` / ``shoulders evaluate``; a
fact that is missing (no evaluation yet, an older run folder) is left out rather than guessed.
"""

from __future__ import annotations

from typing import Any, Mapping

Fact = tuple[str, str, bool]  # (label, value, is a sentence rather than a number)


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _pct(value: Any) -> str | None:
    return f"{value:.1%}" if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def accuracy_facts(recorded: Any, evaluation: Mapping[str, Any] | None) -> list[Fact]:
    """Test accuracy (from the evaluation when it was on the test split, else the one recorded at training),
    validation accuracy, and the evaluated split's accuracy when it was another split."""
    facts: list[Fact] = []
    split = (evaluation or {}).get("split")
    evaluated = _pct(_get(evaluation, "metrics", "accuracy"))
    tta = _get(evaluation, "tta", "enabled")
    suffix = " (with TTA)" if tta else ""
    test = evaluated if split == "test" else _pct(_get(recorded, "test_accuracy"))
    if test:
        facts.append(("test accuracy" + (suffix if split == "test" else ""), test, False))
    val = _pct(_get(recorded, "val_accuracy"))
    if val:
        facts.append(("val accuracy (at training)", val, False))
    if evaluated and split != "test":
        label = f"{split} accuracy (evaluated)" if split in ("val", "train") else f"accuracy on {split or 'the'} images"
        facts.append((label + suffix, evaluated, False))
    balanced = _pct(_get(evaluation, "metrics", "balanced_accuracy"))
    if balanced:
        facts.append(("balanced accuracy", balanced, False))
    return facts


def data_fact(config: Any, advice: Any, evaluation: Mapping[str, Any] | None, split_record: Any,
              classes: list[str]) -> Fact | None:
    """The data set in one line: classes, training images, where they came from, what was evaluated."""
    bits = []
    if classes:
        bits.append(f"{len(classes)} classes")
    total = _get(advice, "size", "total")
    if isinstance(total, int):
        bits.append(f"{total} labelled training images")
    source = _get(split_record, "source")
    if isinstance(source, str) and source:
        bits.append(f"from {source}")
    n = _get(evaluation, "metrics", "n_samples")
    if isinstance(n, int):
        split = evaluation.get("split")
        named = split in ("test", "val", "train")
        bits.append(f"evaluated on {n} {split} images" if named else f"evaluated on {n} images")
    size = _get(config, "data_config", "input_size")
    if isinstance(size, list) and len(size) == 3:
        bits.append(f"at {size[1]}×{size[2]} px")
    return ("data", ", ".join(bits), True) if bits else None


def plan_fact(config: Any, advice: Any) -> Fact | None:
    """What trained, in one sentence: strategy and depth, augmentation, epochs, backbone, and the quadrant."""
    if not isinstance(config, Mapping):
        return None
    resolved = config.get("config") if isinstance(config.get("config"), Mapping) else {}
    strategy = _get(resolved, "strategy", "name") or config.get("strategy")
    if isinstance(strategy, Mapping):
        strategy = strategy.get("name")
    if not isinstance(strategy, str):
        return None
    phases = _get(config, "strategy", "phases") or []
    sentence = f"{strategy}"
    if phases and isinstance(phases[-1], Mapping):
        last = phases[-1]
        trained, frozen = len(last.get("trainable_blocks") or []), len(last.get("frozen_blocks") or [])
        sentence += f" (trains {trained} of {trained + frozen} blocks" if trained else " (head only"
        sentence += f", {last.get('trainable_params', 0):,} parameters)"
    augment, epochs = _get(resolved, "data", "augment"), _get(resolved, "train", "epochs")
    if augment and augment != "none":
        sentence += f", {augment} augmentation"
    if isinstance(epochs, int) and strategy != "frozen":
        sentence += f", {epochs} epochs"
    backbone = _get(resolved, "model", "backbone") or config.get("backbone")  # older folders: at the top level
    if isinstance(backbone, str):
        sentence += f", on {backbone}"
    quadrant = _get(advice, "quadrant")
    sentence += f" — chosen by the advisor (quadrant {quadrant})" if quadrant else " — chosen by hand"
    return ("plan", sentence, True)


def time_fact(config: Any) -> Fact | None:
    seconds, device = _get(config, "runtime", "seconds"), _get(config, "runtime", "device")
    if not isinstance(seconds, (int, float)):
        return None
    shown = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    return ("training time", shown + (f" on {device}" if device else ""), False)


def headline_facts(config: Any, recorded: Any, evaluation: Mapping[str, Any] | None, advice: Any,
                   split_record: Any, classes: list[str]) -> list[Fact]:
    """Every headline fact the run folder supports, results first."""
    facts = accuracy_facts(recorded, evaluation)
    for fact in (time_fact(config), data_fact(config, advice, evaluation, split_record, classes),
                 plan_fact(config, advice)):
        if fact is not None:
            facts.append(fact)
    return facts
