"""Detectors by name: the registry that ``train --detector``, ``backtest`` and every loader use.

Each entry is imported only when used, so loading the Mahalanobis detector never imports
the autoencoder's code (nor, for scoring, TensorFlow). A name ``package.module:Class`` is a
plug-in: any outside class with ``fit`` and ``score_samples`` or ``decision_function``, run by
:mod:`lstm_rare_event.detectors.plugin`. In Python, :func:`create` also takes a detector, its
class, or an outside class or instance.
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from pathlib import Path

from lstm_rare_event.detectors.base import CONFIG_JSON, FORMAT, Detector
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import Params, read_json

REGISTRY = {
    "lstm": "lstm_rare_event.detectors.lstm_ae:LstmDetector",
    "mahalanobis": "lstm_rare_event.detectors.mahalanobis:MahalanobisDetector",
    "pca": "lstm_rare_event.detectors.pca:PcaDetector",
    "restart": "lstm_rare_event.detectors.restart:RestartDetector",
}
PLUGIN = "lstm_rare_event.detectors.plugin:PluginDetector"
DEFAULT = "lstm"
NAMES = tuple(REGISTRY)


def is_plugin(name) -> bool:
    """Whether ``name`` is an import path ``package.module:Class`` rather than a registered name."""
    return isinstance(name, str) and ":" in name


def detector_class(name: str) -> type[Detector]:
    """The class that runs ``name``; for a plug-in, the adapter (the plug-in's own module is
    imported by :func:`create`, not here)."""
    if not is_plugin(name) and name not in REGISTRY:
        raise UserError(f"detector {name!r}: choose one of {', '.join(REGISTRY)}, or a plug-in package.module:Class")
    return _import(PLUGIN if is_plugin(name) else REGISTRY[name])


def _import(path: str):
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


def engines() -> tuple[str, ...]:
    """Every engine some detector offers (``--engine``'s choices); imports every detector."""
    return tuple(dict.fromkeys(e for name in REGISTRY for e in detector_class(name).engines))


def option_names(name: str) -> list[str]:
    return [f.name for f in fields(detector_class(name).Options)]


def create(name, **params) -> Detector:
    """A detector ``name`` with ``params`` (options left out take their defaults); an option
    the detector does not have is one line naming the options it has. ``name`` may also be,
    in Python, a detector (returned as it is), a detector class, or an outside class or
    unfitted instance (run as a plug-in)."""
    if not isinstance(name, str):
        return _create_from_object(name, params)
    cls = detector_class(name)
    known = option_names(name)
    unknown = [key for key in params if key not in known]
    if unknown:
        takes = ", ".join("--" + k.replace("_", "-") for k in known) or "no option"
        raise UserError(f"--{unknown[0].replace('_', '-')} does not apply to --detector {name} (it takes {takes})")
    options = cls.Options.from_cli(**params) if hasattr(cls.Options, "from_cli") else cls.Options(**params)
    return cls.build(name, options)


def _create_from_object(obj, params: dict) -> Detector:
    if isinstance(obj, Detector) and not params:
        return obj
    if isinstance(obj, type) and issubclass(obj, Detector):
        return obj(obj.Options(**params))
    if params:
        raise UserError(f"options {', '.join(params)}: give an outside detector its parameters when making it")
    return _import(PLUGIN).wrap(obj)


def assign_options(names, given: dict) -> dict[str, dict]:
    """``given`` options shared out among the detectors ``names``: each goes to every one that
    has it (detectors without any are left out); an option none of them has is one line naming
    the detectors that take it."""
    for key in given:
        if not any(key in option_names(name) for name in names):
            takers = [name for name in NAMES if key in option_names(name)] or \
                (["plug-in"] if key in option_names(PLUGIN) else [])
            which = f"the {' and '.join(takers)} detector{'s' if len(takers) > 1 else ''}" if takers else "no detector"
            raise UserError(f"--{key.replace('_', '-')} applies to {which}, which --detector does not include")
    shared = {name: {k: v for k, v in given.items() if k in option_names(name)} for name in names}
    return {name: params for name, params in shared.items() if params}


def load(folder, hint: str = "re-run train", **load_options) -> Detector:
    """The detector saved in ``folder``, whichever it is (named in its detector.json)."""
    folder = Path(folder)
    config = Params(read_json(folder / CONFIG_JSON, hint), folder / CONFIG_JSON, hint)
    config.text("format", (FORMAT,))
    name = config.text("detector", None if is_plugin(config.data.get("detector")) else NAMES)
    return detector_class(name).load(folder, config, **load_options)
