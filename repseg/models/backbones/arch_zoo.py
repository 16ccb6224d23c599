"""The published RepVGG and RepVGGplus architectures and the per-block layout (channels, stride, dilation, groups,
squeeze-excitation) they imply."""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

NUM_STAGES = 5  # stage 0 (one stem block) + four stages
FAST_DILATED_BLOCKS = 5  # 'fast' variants dilate only the last 5 blocks of the network (paper, 4.3)

_G_LAYERS = tuple(range(2, 27, 2))  # global layer indices that may be grouped (stage 1 block 0 is index 1)
_A_BLOCKS, _B_BLOCKS, _D_BLOCKS = (2, 4, 14, 1), (4, 6, 16, 1), (8, 14, 24, 1)


def _arch(num_blocks, a, b, groups=1, use_se=False, use_post_se=False) -> dict:
    return dict(num_blocks=num_blocks, width_factor=(a, a, a, b),
                group_layer_map={layer: groups for layer in _G_LAYERS} if groups > 1 else None, use_se=use_se,
                use_post_se=use_post_se)


ARCH_SETTINGS: Dict[str, dict] = {
    'A0': _arch(_A_BLOCKS, 0.75, 2.5),
    'A1': _arch(_A_BLOCKS, 1, 2.5),
    'A2': _arch(_A_BLOCKS, 1.5, 2.75),
    'B0': _arch(_B_BLOCKS, 1, 2.5),
    'B1': _arch(_B_BLOCKS, 2, 4),
    'B1g2': _arch(_B_BLOCKS, 2, 4, groups=2),
    'B1g4': _arch(_B_BLOCKS, 2, 4, groups=4),
    'B2': _arch(_B_BLOCKS, 2.5, 5),
    'B2g2': _arch(_B_BLOCKS, 2.5, 5, groups=2),
    'B2g4': _arch(_B_BLOCKS, 2.5, 5, groups=4),
    'B3': _arch(_B_BLOCKS, 3, 5),
    'B3g2': _arch(_B_BLOCKS, 3, 5, groups=2),
    'B3g4': _arch(_B_BLOCKS, 3, 5, groups=4),
    'D2se': _arch(_D_BLOCKS, 2.5, 5, use_se=True),
    # RepVGGplus (official repvggplus.py): D2se's depth and widths, SE after the ReLU instead of before it
    'L2pse': _arch(_D_BLOCKS, 2.5, 5, use_post_se=True),
}
_ARCH_KEYS = ('num_blocks', 'width_factor', 'group_layer_map', 'use_se', 'use_post_se', 'widths')


def official_name(name: str) -> str:
    """The name the official code gives a table entry: 'RepVGG-B2', 'RepVGGplus-L2pse'."""
    return f'{"RepVGGplus" if ARCH_SETTINGS[name]["use_post_se"] else "RepVGG"}-{name}'


_ALIASES = {**{name: name for name in ARCH_SETTINGS}, **{official_name(name): name for name in ARCH_SETTINGS}}


@dataclass(frozen=True)
class BlockSpec:
    in_channels: int
    out_channels: int
    stride: int
    dilation: int
    groups: int
    use_se: bool
    use_post_se: bool = False


def table_name(arch: str) -> str:
    """The table key of a name: 'B2' or 'RepVGG-B2' -> 'B2', 'L2pse' or 'RepVGGplus-L2pse' -> 'L2pse'."""
    if arch not in _ALIASES:
        raise ValueError(f'unknown RepVGG arch {arch!r}; expected one of {", ".join(ARCH_SETTINGS)} '
                         f'(or the official name, e.g. "RepVGG-B2", "RepVGGplus-L2pse") or a dict with keys '
                         f'{", ".join(_ARCH_KEYS)}')
    return _ALIASES[arch]


def resolve_arch(arch: Union[str, dict]) -> dict:
    """The arch settings of a name ('B2', 'RepVGG-B2', 'RepVGGplus-L2pse'), or a custom dict validated."""
    if isinstance(arch, str):
        return dict(ARCH_SETTINGS[table_name(arch)])
    if not isinstance(arch, dict):
        raise ValueError(f'RepVGG arch must be a name or a dict, got {type(arch).__name__}')
    unknown = set(arch) - set(_ARCH_KEYS)
    if unknown or not {'num_blocks', 'width_factor'} <= set(arch):
        raise ValueError(f'RepVGG arch dict has keys {sorted(arch)}; expected num_blocks, width_factor '
                         f'and optionally group_layer_map, use_se, use_post_se, widths')
    if len(arch['num_blocks']) != 4 or len(arch['width_factor']) != 4:
        raise ValueError(f'RepVGG arch dict: num_blocks={arch["num_blocks"]} and width_factor={arch["width_factor"]} '
                         f'must have 4 entries each (stages 1-4)')
    widths = arch.get('widths')
    if widths is not None and (len(widths) != 1 + sum(arch['num_blocks'])
                               or not all(isinstance(w, int) and w >= 1 for w in widths)):
        raise ValueError(f'RepVGG arch dict: widths={widths} must list {1 + sum(arch["num_blocks"])} positive ints, '
                         f'the output channels of every block (stem first)')
    return {'group_layer_map': None, 'use_se': False, 'use_post_se': False, 'widths': None, **arch}


def block_widths(arch: dict) -> List[int]:
    """Output channels of every block, the stem first: the arch's ``widths`` (a pruned network) or the table's
    min(64, 64a) for the stem and 64a, 128a, 256a, 512b for the blocks of stages 1-4."""
    if arch.get('widths'):
        return list(arch['widths'])
    stages = [int(base * factor) for base, factor in zip((64, 128, 256, 512), arch['width_factor'])]
    return [min(64, stages[0])] + [w for w, count in zip(stages, arch['num_blocks']) for _ in range(count)]


def stage_channels(arch: dict) -> List[int]:
    """Output channels of stages 0-4 (their last blocks')."""
    widths, ends = block_widths(arch), [0]
    for count in arch['num_blocks']:
        ends.append(ends[-1] + count)
    return [widths[end] for end in ends]


def _check_per_stage(name: str, values: Sequence[int]) -> tuple:
    values = tuple(values)
    if len(values) != NUM_STAGES or not all(isinstance(v, int) and v >= 1 for v in values):
        raise ValueError(f'RepVGG {name}={values}: expected {NUM_STAGES} positive ints, one per stage 0-4')
    return values


def block_specs(arch: dict, in_channels: int, strides: Sequence[int], dilations: Sequence[int],
                fast: bool = False) -> List[List[BlockSpec]]:
    """Per-stage lists of block specs.

    The first block of a stage takes the stage's stride; every block of a stage takes its dilation, except with
    ``fast``, where only the last ``FAST_DILATED_BLOCKS`` blocks of the network keep a dilation > 1.
    """
    strides = _check_per_stage('strides', strides)
    dilations = _check_per_stage('dilations', dilations)
    widths = block_widths(arch)
    counts = [1] + list(arch['num_blocks'])
    total = sum(counts)
    groups_map: Optional[dict] = arch['group_layer_map'] or {}
    specs, layer, cin = [], 0, in_channels
    for stage, count in enumerate(counts):
        stage_specs = []
        for i in range(count):
            dilation = 1 if fast and total - layer > FAST_DILATED_BLOCKS else dilations[stage]
            cout = widths[layer]
            stage_specs.append(BlockSpec(cin, cout, strides[stage] if i == 0 else 1, dilation,
                                         groups_map.get(layer, 1), bool(arch['use_se']), bool(arch['use_post_se'])))
            cin, layer = cout, layer + 1
        specs.append(stage_specs)
    return specs
