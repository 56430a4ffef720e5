"""The decoder's validation search: keep the setting whose decoder localises best on validation.

The paper picks n- (background fraction) and alpha (PCE weight) on the validation split. Every
point of the grid trains its own decoder (stage ``decoder``); this job reads their validation
histories only, picks the best score (ties: the first point in the grid's order), and links that
decoder's best and last checkpoints as its outputs, so the test evaluation reads one fixed pair of
files and never sees the others. The test split plays no part in the choice.

``choice.json``: ``{"setting": {"name", "bg_fraction", "pce_weight"}, "score": <best validation
localisation>, "candidates": {<name>: <its best validation localisation>, ...}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fcam.errors import DataError
from fcam.io import link_or_copy, load_json, remove_stale_temporaries, save_json
from fcam.pipeline.stages import JobSpec

__all__ = ["choose", "run"]

log = logging.getLogger(__name__)


def choose(histories: list[dict[str, Any]]) -> int:
    """Index of the history with the best validation score (the first of equal ones).

    Args:
        histories: the decoders' ``history.json`` contents, each with ``best.localisation``.
    """
    scores = [h["best"]["localisation"] for h in histories]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def run(spec: JobSpec, tracker: Any) -> None:
    """The ``select`` stage."""
    paths = spec.paths("history_files")
    remove_stale_temporaries(spec.path(k) for k in ("best", "last", "choice"))
    histories = []
    for path in paths:
        history = load_json(path)
        if "setting" not in history or "localisation" not in history.get("best", {}):
            raise DataError(f"{path}: not a decoder history (no setting or best validation score)")
        histories.append(history)
    i = choose(histories)
    chosen = histories[i]["setting"]
    link_or_copy(spec.paths("best_files")[i], spec.path("best"))
    link_or_copy(spec.paths("last_files")[i], spec.path("last"))
    candidates = {h["setting"]["name"]: h["best"]["localisation"] for h in histories}
    choice = {"setting": chosen, "score": candidates[chosen["name"]], "candidates": candidates}
    save_json(choice, spec.path("choice"))
    log.info("chosen %s (validation %.2f) among %s", chosen["name"], choice["score"], candidates)
    tracker.log_metrics({f"val_{name}": score for name, score in candidates.items()})
    tracker.set_tags({"chosen_setting": chosen["name"]})
    tracker.log_artifact(spec.path("choice"))
