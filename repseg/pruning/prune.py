"""tools/prune.py's library: a trained segmentor -> its pruned deploy form (or train form), proven, written whole.

The proof: the original model with the removed channels zeroed computes what the pruned one computes, and the pruned
model compared is the one built from the written config and loaded strictly with the written weights. The train form
keeps its BNs (fine-tuned at the recipe's lr, then converted); its identity branches tie a stage's widths together.
"""
import copy
import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config
from torch import nn

from repseg.apis import build_segmentor, model_config, read_checkpoint, read_config
from repseg.deploy import (AlreadyDeployed, carried_meta, config_text, convert_to_deploy, deploy_config,
                           raise_if_failed, verify_models)
from repseg.models import config_form
from repseg.models.backbones import DualRepVGG, dual_out_channels, resolve_arch, stage_channels
from repseg.utils import atomic_dir, check_out_dir, torch_bytes, write_file
from repseg.version import __version__
from .surgery import IMPORTANCE, prune_segmentor, segmentor_gmacs, zero_channels

PRUNED_CHECKPOINT, PRUNED_CONFIG, PRUNING_REPORT = 'pruned.pth', 'pruned_config.py', 'pruning.json'
GMACS_TOLERANCE = 0.02  # the reached GMACs are within 2% of the target
PRUNE_RTOL = 1e-5  # pruned vs zeroed logits, relative to max |logit|
PROOF_SHAPE = (129, 161)
FORMS = ('deploy', 'train')


def inference_params(segmentor: nn.Module) -> int:
    """Parameters of what inference runs (the auxiliary head only trains)."""
    return sum(p.numel() for n, p in segmentor.named_parameters() if not n.startswith('auxiliary_head.'))


#: the backbones whose pruned widths a config can list block by block
PRUNABLE_BACKBONES = ('RepVGG', 'DualRepVGG')


def _block_width(block: nn.Module) -> int:
    return (block.rbr_reparam if block.deploy else block.rbr_dense.conv).out_channels


def written_arch(backbone: nn.Module) -> Tuple[dict, List[int]]:
    """The pruned backbone's arch with its widths block by block, and the channels of each output index."""
    if isinstance(backbone, DualRepVGG):
        arch = dict(backbone.arch, block_widths=[_block_width(b) for b in backbone.blocks()])
        return arch, dual_out_channels(arch)
    blocks = [backbone.stage0] + [b for stage in range(1, 5) for b in getattr(backbone, f'stage{stage}')]
    arch = dict(resolve_arch(backbone.arch), widths=[_block_width(b) for b in blocks])
    return {k: v for k, v in arch.items() if v is not None}, stage_channels(arch)


def pruned_config(cfg: Config, pruned: nn.Module, load_from: str) -> Config:
    """``cfg`` (in the pruned model's form) with the backbone's widths listed block by block and the heads' channels
    read from the pruned model: an ordinary config that builds the pruned network."""
    out = copy.deepcopy(cfg)
    backbone = pruned.backbone
    out.model.backbone.arch, channels = written_arch(backbone)
    for key in ('decode_head', 'auxiliary_head'):
        heads = out.model.get(key)
        if not heads:
            continue
        modules = getattr(pruned, key)
        for head_cfg, head in zip(heads if isinstance(heads, list) else [heads],
                                  modules if isinstance(modules, nn.ModuleList) else [modules]):
            index = head_cfg.get('in_index', -1)
            head_cfg.in_channels = [channels[i] for i in backbone.out_indices][index]
            head_cfg.channels = head.conv_seg.in_channels
    out.load_from = load_from
    return out


def _train_source(config: Union[str, Path, Config], checkpoint: Union[str, Path]):
    """(train config, train model, meta, no conversion): a deploy checkpoint has no branches left to prune."""
    cfg = read_config(config)
    state, meta = read_checkpoint(checkpoint)
    if config_form(cfg) == 'deploy' or meta.get('deploy'):
        raise ValueError(f'{checkpoint}: a deploy-form checkpoint has no train-time branches; --form train needs the '
                         f'training checkpoint (or use --form deploy)')
    return cfg, build_segmentor(model_config(cfg), state, meta, checkpoint), meta, []


def _deploy_source(config: Union[str, Path, Config], checkpoint: Union[str, Path], log: Callable[[str], None]):
    """(deploy config, deploy model, meta, conversion proof): a train-form checkpoint goes through the converter (in a
    temporary folder, as tools/quantize.py does), a deploy-form one is loaded as it is."""
    cfg, conversion = read_config(config), []
    with tempfile.TemporaryDirectory(prefix='repseg-prune-') as tmp:
        try:
            done = convert_to_deploy(cfg, checkpoint, tmp, log=lambda m: log(f'[deploy] {m}'))
            cfg, checkpoint, conversion = read_config(done.config), done.checkpoint, [d.as_dict() for d in done.diffs]
        except AlreadyDeployed:
            cfg = cfg if config_form(cfg) == 'deploy' else deploy_config(cfg)
        state, meta = read_checkpoint(checkpoint)
        return cfg, build_segmentor(model_config(cfg), state, meta, checkpoint), meta, conversion


def prune(config: Union[str, Path, Config], checkpoint: Union[str, Path], out_dir: Union[str, Path],
          target_gmacs: Optional[float] = None, ratio: Optional[float] = None, shape: Sequence[int] = (512, 1024),
          importance: str = 'l2', round_to: int = 16, form: str = 'deploy', force: bool = False,
          log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Write ``out_dir/{pruned_config.py, pruned.pth, pruning.json}`` (or nothing) for a trained segmentor pruned in
    ``form`` to ``target_gmacs`` (deploy GMACs) at ``shape``, or by the share ``ratio`` of them; returns the report."""
    if (target_gmacs is None) == (ratio is None):
        raise ValueError('give exactly one of --target-gmacs and --ratio')
    if ratio is not None and not 0 < ratio < 1:
        raise ValueError(f'--ratio {ratio}: expected the share of GMACs to remove, between 0 and 1 (0.3 removes 30%)')
    if importance not in IMPORTANCE:
        raise ValueError(f'--importance {importance!r}: expected one of {", ".join(IMPORTANCE)}')
    if form not in FORMS:
        raise ValueError(f'--form {form!r}: expected one of {", ".join(FORMS)}')
    if round_to < 1:
        raise ValueError(f'--round-to {round_to}: expected a positive number of channels')
    check_out_dir(out_dir, force)
    backbone = (read_config(config).get('model') or {}).get('backbone') or {}
    if backbone.get('type') not in PRUNABLE_BACKBONES:  # the pruned config lists the per-block widths
        raise ValueError(f'{config}: model.backbone.type is {backbone.get("type")!r}; tools/prune.py prunes '
                         f'{" and ".join(PRUNABLE_BACKBONES)} backbones')
    cfg, model, meta, conversion = (_train_source(config, checkpoint) if form == 'train' else
                                    _deploy_source(config, checkpoint, log))
    before = segmentor_gmacs(model, shape)
    target = before * (1 - ratio) if ratio is not None else target_gmacs
    if not 0 < target < before:
        raise ValueError(f'--target-gmacs {target:g}: expected between 0 and the model\'s {before:.2f} GMACs at '
                         f'{shape[0]}x{shape[1]}')
    pruned = copy.deepcopy(model)
    removed = prune_segmentor(pruned, target, shape, importance, round_to, log)
    after = segmentor_gmacs(pruned, shape)
    if abs(after - target) > GMACS_TOLERANCE * target:
        raise ValueError(f'reached {after:.2f} GMACs, more than {GMACS_TOLERANCE:.0%} from the target {target:.2f}; '
                         f'try a smaller --round-to (now {round_to})')

    source = str(config.filename if isinstance(config, Config) else config)
    ckpt_path = Path(out_dir) / PRUNED_CHECKPOINT
    header = (f'Pruned {form} form of {source}: {before:.2f} -> {after:.2f} GMACs at {shape[0]}x{shape[1]}\n'
              f'weights: {PRUNED_CHECKPOINT} (load_from), pruned from {checkpoint} by tools/prune.py')
    text = config_text(pruned_config(cfg, pruned, str(ckpt_path)), header)
    state = pruned.state_dict()
    built = build_segmentor(model_config(Config.fromstring(text, '.py')), state, meta, PRUNED_CHECKPOINT)
    diffs = verify_models(zero_channels(model, removed), built, PROOF_SHAPE, rtol=PRUNE_RTOL)
    for diff in diffs:
        log(str(diff))
    raise_if_failed(diffs, f'{checkpoint}: the pruned model differs from the zeroed one', 0.0)

    report = dict(
        source_config=source, source_checkpoint=str(Path(checkpoint).resolve()),
        form=form, criterion=importance, round_to=round_to, shape=list(shape), target_gmacs=target,
        before=dict(gmacs=before, params=inference_params(model)),
        after=dict(gmacs=after, params=inference_params(built)),
        widths={name: m.out_channels for name, m in built.named_modules() if isinstance(m, nn.Conv2d)},
        removed_channels={name: sorted(idxs) for name, idxs in removed.items() if idxs},
        conversion=conversion, verification=[d.as_dict() for d in diffs], repseg_version=__version__)
    ckpt_meta = dict(carried_meta(meta), deploy=form == 'deploy',
                     pruning={k: report[k] for k in ('form', 'criterion', 'before', 'after')})
    with atomic_dir(out_dir, force) as tmp:
        write_file(tmp / PRUNED_CHECKPOINT, torch_bytes(dict(meta=ckpt_meta, state_dict=state)))
        write_file(tmp / PRUNING_REPORT, json.dumps(report, indent=1) + '\n')
        write_file(tmp / PRUNED_CONFIG, text)
    log(f'{before:.2f} -> {after:.2f} GMACs, {report["before"]["params"] / 1e6:.2f}M -> '
        f'{report["after"]["params"] / 1e6:.2f}M parameters; wrote {out_dir}/{{{PRUNED_CONFIG}, {PRUNED_CHECKPOINT}, '
        f'{PRUNING_REPORT}}}')
    return report
