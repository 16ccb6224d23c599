# PSPNet with RepVGG-B2 on Cityscapes, 713x713, 7440 iterations at batch 16 (stages 3 and 4 dilated by 2 and 4).
# ImageNet weights: the official training-time release file, see docs/pretrained.md.
_base_ = ['./_base_/pspnet_repvgg_cityscapes.py']
model = dict(
    backbone=dict(arch='B2', fast=False,
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/RepVGG-B2-train.pth')),
    decode_head=dict(in_channels=2560),
    auxiliary_head=dict(in_channels=640))
