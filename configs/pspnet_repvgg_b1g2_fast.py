# PSPNet with RepVGG-B1g2-fast on Cityscapes, 713x713, 7440 iterations at batch 16.
# The paper's "fast" variant: only the last 5 blocks dilated.
# ImageNet weights: the official training-time release file, see docs/pretrained.md.
_base_ = ['./_base_/pspnet_repvgg_cityscapes.py']
model = dict(
    backbone=dict(arch='B1g2', fast=True,
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/RepVGG-B1g2-train.pth')),
    decode_head=dict(in_channels=2048),
    auxiliary_head=dict(in_channels=512))
