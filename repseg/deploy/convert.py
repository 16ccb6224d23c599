"""Convert a trained segmentor to its deploy form, prove the conversion, then write it (or nothing).

The proof is run on the *written artifacts*: the deploy config is dumped to text and parsed back, a model is built
from it and loaded strictly with the converted state dict, and only that model is compared with the training one.
"""
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from mmengine.config import Config

from repseg.apis import build_segmentor, model_config, read_checkpoint, read_config
from repseg.models import config_form, reparameterize, state_dict_form
from repseg.utils import LOGIT_RTOL, MIN_AGREEMENT, LogitDiff, atomic_dir, check_out_dir, torch_bytes, write_file
from repseg.version import __version__
from .config_io import config_text, deploy_config
from .verify import verify_models

DEPLOY_CHECKPOINT = 'deploy.pth'
DEPLOY_CONFIG = 'deploy_config.py'


class AlreadyDeployed(Exception):
    """The input is already in deploy form: nothing to convert (not an error for the CLI)."""


class VerificationError(ValueError):
    """The deploy model differs from the training model by more than the tolerance."""


@dataclass
class Conversion:
    """What convert_to_deploy measured and wrote."""

    diffs: List[LogitDiff]
    checkpoint: Path
    config: Path
    meta: Dict[str, Any] = field(default_factory=dict)


def convert_to_deploy(config: Union[str, Path, Config], checkpoint: Union[str, Path], out_dir: Union[str, Path],
                      image: Optional[Union[str, Path]] = None, atol: Optional[float] = None,
                      rtol: float = LOGIT_RTOL,
                      min_agreement: float = MIN_AGREEMENT, shape: Sequence[int] = (256, 512), force: bool = False,
                      log: Callable[[str], None] = print) -> Conversion:
    """Write ``out_dir/deploy.pth`` and ``out_dir/deploy_config.py`` for a trained RepVGG segmentor.

    Refuses (CheckpointError/ValueError, nothing written) an invalid checkpoint and a conversion whose logits
    differ by more than the tolerance (``atol``, else ``rtol * max|logit|``) or whose argmax agrees on fewer than
    ``min_agreement`` of the pixels. Raises AlreadyDeployed for an input already in deploy form. ``out_dir`` is
    built beside its destination and moved into place whole; one that holds files is refused unless ``force``.
    """
    check_out_dir(out_dir, force)
    src_cfg = read_config(config)
    if image is not None and not Path(image).is_file():
        raise FileNotFoundError(f'{image}: no such image file')
    cfg_form = config_form(src_cfg)
    state, meta = read_checkpoint(checkpoint)
    ckpt_form = state_dict_form(state, checkpoint, prefix='backbone.')
    if ckpt_form == 'deploy':
        hint = '' if cfg_form == 'deploy' else ' (use it with a config whose model.backbone.deploy=True)'
        raise AlreadyDeployed(f'{checkpoint}: already in deploy form (rbr_reparam backbone); nothing to convert, '
                              f'nothing written{hint}')
    if cfg_form == 'deploy':
        raise ValueError(f'{src_cfg.filename}: model.backbone.deploy=True but {checkpoint} is in train form; pass '
                         f'the training config')

    # the reference: the training model exactly as trained (checked and loaded strictly)
    ref = build_segmentor(model_config(src_cfg), state, meta, checkpoint)
    converted = reparameterize(copy.deepcopy(ref.backbone))
    deploy_state = {**{k: v for k, v in state.items() if not k.startswith('backbone.')},  # heads as they are
                    **{f'backbone.{k}': v for k, v in converted.state_dict().items()}}

    # the candidate: built from the deploy config as it will be read back from disk
    arch = src_cfg.model.backbone.get('arch')
    header = f'Deploy form of {src_cfg.filename}\nweights: {DEPLOY_CHECKPOINT}, converted from {checkpoint}'
    text = config_text(deploy_config(src_cfg), header)
    dep = build_segmentor(model_config(Config.fromstring(text, '.py')), deploy_state, meta, DEPLOY_CHECKPOINT)
    diffs = verify_models(ref, dep, shape, image, atol=atol, rtol=rtol, min_agreement=min_agreement)
    for diff in diffs:
        log(str(diff))
    raise_if_failed(diffs, f'{checkpoint}: deploy model differs from the training model', min_agreement)

    out_dir = Path(out_dir)
    deploy_meta = dict(carried_meta(meta), deploy=True, arch=arch.to_dict() if hasattr(arch, 'to_dict') else arch,
                       source_checkpoint=str(Path(checkpoint).resolve()), source_config=str(src_cfg.filename),
                       repseg_version=__version__, verification=[d.as_dict() for d in diffs])
    ckpt_path, cfg_path = out_dir / DEPLOY_CHECKPOINT, out_dir / DEPLOY_CONFIG
    with atomic_dir(out_dir, force) as tmp:
        write_file(tmp / DEPLOY_CHECKPOINT, torch_bytes(dict(meta=deploy_meta, state_dict=deploy_state)))
        write_file(tmp / DEPLOY_CONFIG, text)
    log(f'wrote {ckpt_path} and {cfg_path}')
    return Conversion(diffs, ckpt_path, cfg_path, deploy_meta)


def carried_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    """The plain, weights_only-loadable parts of a runner checkpoint's meta worth carrying over."""
    return {k: meta[k] for k in ('dataset_meta', 'epoch', 'iter', 'seed', 'experiment_name') if k in meta}


def raise_if_failed(diffs: Sequence[LogitDiff], what: str, min_agreement: float) -> None:
    """VerificationError naming the first failed comparison of ``what``, else nothing."""
    failed = next((d for d in diffs if not d.passed), None)
    if failed is not None:
        why = (f'max |logit diff| {failed.max_abs:.3e} > tolerance {failed.tolerance:.3e}'
               if failed.max_abs > failed.tolerance else
               f'argmax agreement {failed.agreement * 100:.4f}% < {min_agreement * 100:.4f}%')
        raise VerificationError(f'{what} on {failed.input}: {why}; nothing written')
