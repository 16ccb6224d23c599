"""Key layouts of the RepVGG checkpoint formats we import, and their translation to RepSeg's backbone keys.

RepSeg's keys are the official RepVGG ones; mmpretrain and timm rename blocks, branches and SE layers
(docs/pretrained.md); RepVGGplus nests blocks in ``stageN.blocks.i`` and splits stage 3 in two. Every rule is a
table, so that a format can be checked against its source at a glance.
"""
import re
from typing import Dict, List, Optional, Tuple

from torch import Tensor

from ..utils.io import CheckpointError

OFFICIAL, REPVGGPLUS, MMPRETRAIN, TIMM = 'official', 'repvggplus', 'mmpretrain', 'timm'
FORMATS = (OFFICIAL, REPVGGPLUS, MMPRETRAIN, TIMM)

# Block prefixes: (pattern, how to build RepSeg's prefix from the match and the number of blocks in RepVGGplus's
# ``stage3_first``). Stage 0 is one block, not a Sequential.
_BLOCK_PATTERNS = {
    OFFICIAL: [(re.compile(r'^stage0\.'), lambda m, _: 'stage0.'),
               (re.compile(r'^stage([1-4])\.(\d+)\.'), lambda m, _: f'stage{m[1]}.{m[2]}.')],
    REPVGGPLUS: [(re.compile(r'^stage0\.'), lambda m, _: 'stage0.'),
                 (re.compile(r'^stage([124])\.blocks\.(\d+)\.'), lambda m, _: f'stage{m[1]}.{m[2]}.'),
                 (re.compile(r'^stage3_first\.blocks\.(\d+)\.'), lambda m, _: f'stage3.{m[1]}.'),
                 (re.compile(r'^stage3_second\.blocks\.(\d+)\.'), lambda m, first: f'stage3.{first + int(m[1])}.')],
    MMPRETRAIN: [(re.compile(r'^stem\.'), lambda m, _: 'stage0.'),
                 (re.compile(r'^stage_([1-4])\.(\d+)\.'), lambda m, _: f'stage{m[1]}.{m[2]}.')],
    TIMM: [(re.compile(r'^stem\.'), lambda m, _: 'stage0.'),
           (re.compile(r'^stages\.([0-3])\.(\d+)\.'), lambda m, _: f'stage{int(m[1]) + 1}.{m[2]}.')],
}
_STAGE3_FIRST = re.compile(r'^stage3_first\.blocks\.(\d+)\.')
_OFFICIAL_MODULES = ('rbr_dense.conv', 'rbr_dense.bn', 'rbr_1x1.conv', 'rbr_1x1.bn', 'rbr_identity', 'rbr_reparam',
                     'se.down', 'se.up', 'post_se.down', 'post_se.up')

# Inside a block: source module path -> RepSeg module path (the leaf, e.g. ``weight``, is kept).
_BLOCK_MODULES = {
    # post_se: RepVGGplus's SE after the ReLU; in the official layout also for RepSeg's own L2pse backbone files
    OFFICIAL: {name: name for name in _OFFICIAL_MODULES},
    REPVGGPLUS: {name: name for name in _OFFICIAL_MODULES if not name.startswith('se.')},
    MMPRETRAIN: {'branch_3x3.conv': 'rbr_dense.conv', 'branch_3x3.norm': 'rbr_dense.bn',
                 'branch_1x1.conv': 'rbr_1x1.conv', 'branch_1x1.norm': 'rbr_1x1.bn',
                 'branch_norm': 'rbr_identity', 'branch_reparam': 'rbr_reparam',
                 'se_layer.conv1.conv': 'se.down', 'se_layer.conv2.conv': 'se.up'},
    # timm's SE (``attn``, SEModule with rd_ratio 1/16, rd_divisor 1) pools globally, has biased 1x1 convs and sits
    # on the branch sum before the ReLU, on the stem too: the same computation as RepSeg's SEBlock.
    TIMM: {'conv_kxk.conv': 'rbr_dense.conv', 'conv_kxk.bn': 'rbr_dense.bn',
           'conv_1x1.conv': 'rbr_1x1.conv', 'conv_1x1.bn': 'rbr_1x1.bn',
           'identity': 'rbr_identity', 'reparam_conv': 'rbr_reparam',
           'attn.fc1': 'se.down', 'attn.fc2': 'se.up'},
}

# The ImageNet classifier (and RepVGGplus's auxiliary classifiers), never part of a backbone.
_CLASSIFIER = {OFFICIAL: re.compile(r'^linear\.'),
               REPVGGPLUS: re.compile(r'^(linear|stage1_aux|stage2_aux|stage3_first_aux)\.'),
               MMPRETRAIN: re.compile(r'^(head|neck)\.'), TIMM: re.compile(r'^head\.')}

# Keys that only one format has, used to recognise it; in detection order, official last (the least specific).
_SIGNATURES = {
    MMPRETRAIN: re.compile(r'^(stem\.branch_|stage_[1-4]\.)'),
    TIMM: re.compile(r'^(stem\.(conv_kxk|conv_1x1|identity|reparam_conv|attn)\.|stages\.)'),
    REPVGGPLUS: re.compile(r'^(stage[1-4]\.blocks\.|stage3_(first|second)\.|(stage1|stage2|stage3_first)_aux\.)'),
    OFFICIAL: re.compile(r'^stage[0-4]\.'),
}


def detect_format(keys: List[str], source: str) -> str:
    """The first format (in ``_SIGNATURES`` order) whose signature keys appear."""
    for fmt, signature in _SIGNATURES.items():
        if any(signature.match(key) for key in keys):
            return fmt
    sample = ', '.join(sorted(keys)[:3]) or 'no keys'
    raise CheckpointError(f'{source}: not a RepVGG checkpoint in a known format (official RepVGG or RepVGGplus, '
                          f'mmpretrain or timm); first keys: {sample}')


def stage3_first_blocks(keys: List[str]) -> int:
    """How many blocks RepVGGplus's ``stage3_first`` holds (RepSeg's stage 3 continues with ``stage3_second``)."""
    indices = [int(m[1]) for m in map(_STAGE3_FIRST.match, keys) if m]
    return max(indices) + 1 if indices else 0


def map_key(key: str, fmt: str, stage3_first: int = 0) -> Optional[str]:
    """RepSeg's key for ``key`` of ``fmt`` (None: no backbone block key); ``stage3_first``: RepVGGplus' count."""
    for pattern, make_prefix in _BLOCK_PATTERNS[fmt]:
        match = pattern.match(key)
        if match:
            module, _, leaf = key[match.end():].rpartition('.')
            target = _BLOCK_MODULES[fmt].get(module)
            return f'{make_prefix(match, stage3_first)}{target}.{leaf}' if target and leaf else None
    return None


def to_repseg_keys(state: Dict[str, Tensor], source: str) -> Tuple[Dict[str, Tensor], str, List[str]]:
    """(state dict in RepSeg's backbone keys, format, dropped keys); an unknown key raises CheckpointError."""
    state = {re.sub(r'^(module\.)+', '', key): value for key, value in state.items()}  # DDP's prefix
    dropped = []
    if any(key.startswith('backbone.') for key in state):  # a whole model (mmpretrain, or a RepSeg segmentor)
        dropped = [key for key in state if not key.startswith('backbone.')]
        state = {key[len('backbone.'):]: value for key, value in state.items() if key.startswith('backbone.')}
    fmt = detect_format(list(state), source)
    first = stage3_first_blocks(list(state)) if fmt == REPVGGPLUS else 0
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        if _CLASSIFIER[fmt].match(key):
            dropped.append(key)
            continue
        target = map_key(key, fmt, first)
        if target is None:
            raise CheckpointError(f'{source}: key {key!r} is not a RepVGG backbone key of the {fmt} format '
                                  f'(nor its classifier)')
        if target in out:
            raise CheckpointError(f'{source}: keys map twice onto {target!r}')
        out[target] = value
    return out, fmt, dropped
