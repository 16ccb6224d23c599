"""``--cfg-options`` that are checked: mmengine merges any key silently, so a typo would train the wrong thing."""
import inspect
from typing import Any, Dict, Optional

from mmengine.config import Config
from mmengine.runner import Runner
from mmseg import registry as mmseg_registry

_REGISTRIES = ('MODELS', 'DATASETS', 'TRANSFORMS', 'HOOKS', 'METRICS', 'OPTIM_WRAPPERS', 'OPTIMIZERS',
               'PARAM_SCHEDULERS', 'LOOPS', 'VISUALIZERS', 'VISBACKENDS', 'DATA_SAMPLERS', 'RUNNERS')

# top-level keys that Runner.from_cfg reads even when a config does not set them (e.g. randomness, resume)
_RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self'}


def _accepts(type_name: Any, key: str) -> Optional[bool]:
    """Whether the registered class ``type_name`` takes keyword ``key``; None when the class is unknown here."""
    if not isinstance(type_name, str):
        return None
    for reg_name in _REGISTRIES:
        cls = getattr(mmseg_registry, reg_name).get(type_name)
        if cls is None:
            continue
        if not inspect.isclass(cls):
            params = inspect.signature(cls).parameters
            return key in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        # ``**kwargs`` passed up the class hierarchy (CityscapesDataset -> BaseSegDataset): the bases' names count,
        # and the chain is closed where an ``__init__`` takes no ``**kwargs`` (or at object)
        for klass in inspect.getmro(cls)[:-1]:
            init = klass.__dict__.get('__init__')
            if init is None:
                continue
            params = inspect.signature(init).parameters
            if key in params:
                return True
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                return False
        return False
    return None


def merge_checked_options(cfg: Config, options: Optional[Dict[str, Any]], source: str) -> None:
    """Merge ``options`` into ``cfg`` after checking that every dotted key exists (or, for a new leaf, that the
    parent's registered ``type`` accepts it). ``source`` (the config file) is named in the error."""
    if not options:
        return
    for dotted in options:
        node: Any = dict(cfg.items())
        parts = dotted.split('.')
        for depth, part in enumerate(parts):
            leaf = depth == len(parts) - 1
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if isinstance(node, dict) and part in node:
                node = node[part]
                continue
            parent = '.'.join(parts[:depth]) or '<top level>'
            accepted = _accepts(node.get('type'), part) if isinstance(node, dict) else False
            if leaf and isinstance(node, dict) and (accepted or (depth == 0 and part in _RUNNER_KEYS)):
                break
            known = (', '.join(sorted(map(str, node.keys()))[:12]) if isinstance(node, dict)
                     else f'{len(node)} items')
            raise KeyError(f'--cfg-options {dotted}: {source} has no key {part!r} under {parent} (it has: {known})')
    cfg.merge_from_dict(options)
