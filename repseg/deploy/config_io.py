"""The deploy config: the training config with a plain backbone, written as one self-contained file."""
import copy
from typing import Optional

from mmengine.config import Config


def deploy_config(cfg: Config) -> Config:
    """A copy of ``cfg`` whose backbone is built in deploy form (``deploy=True``) with no pretrained init.

    Everything else stays as in the source, SyncBN included: mmengine's Runner reverts SyncBN to BN when it is
    not distributed, and RepSeg's own tools build it as BN (``repseg.apis.sync_bn_to_bn``).
    """
    out = copy.deepcopy(cfg)
    backbone = out.model.backbone
    backbone.deploy = True
    backbone.init_cfg = None
    backbone.pop('pretrained', None)
    out.model.pretrained = None
    out.load_from = None
    return out


def config_text(cfg: Config, header: Optional[str] = None) -> str:
    """``cfg`` as a flat Python config (bases merged), checked to parse back to the same content."""
    text = cfg.pretty_text
    if Config.fromstring(text, '.py').to_dict() != cfg.to_dict():
        raise RuntimeError(f'{cfg.filename}: the config does not survive a dump/parse round trip')
    if header:
        text = ''.join(f'# {line}\n' for line in header.splitlines()) + text
    return text
