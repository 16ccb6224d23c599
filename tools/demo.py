"""Interim demo: build PSPNet-RepVGG-A0 from the config, re-parameterize it and print the equivalence figures."""
import argparse

import torch
from mmengine import Config

import repseg
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.parse_args()
    register_all_modules()
    cfg = Config.fromfile('configs/_base_/models/pspnet_repvgg.py')
    cfg.model.backbone.update(arch='A0', norm_cfg=dict(type='BN', requires_grad=True))
    cfg.model.decode_head.update(in_channels=1280, norm_cfg=dict(type='BN', requires_grad=True))
    cfg.model.auxiliary_head.update(in_channels=192, norm_cfg=dict(type='BN', requires_grad=True))
    model = MODELS.build(cfg.model).eval()
    x = torch.randn(1, 3, 129, 257)
    with torch.no_grad():
        ref = model(x, mode='tensor')
        repseg.reparameterize(model)
        out = model(x, mode='tensor')
    diff = (ref - out).abs().max().item()
    print(f'PSPNet-RepVGG-A0 logits {tuple(out.shape)}: max abs diff {diff:.2e} '
          f'({diff / ref.abs().max().item():.2e} of max |logit|), argmax agreement '
          f'{(ref.argmax(1) == out.argmax(1)).float().mean().item() * 100:.3f}%')


if __name__ == '__main__':
    main()
