# PSPNet with RepVGGplus-L2pse-fast on Cityscapes, 713x713, 7440 iterations at batch 16.
# The paper's "fast" variant: only the last 5 blocks dilated (the last 4 of stage 3 and the one of stage 4).
# ImageNet weights: the official training-time RepVGGplus file, see docs/pretrained.md.
_base_ = ['./_base_/pspnet_repvgg_cityscapes.py']
model = dict(
    backbone=dict(arch='L2pse', fast=True,  # 'L2pse' = 'RepVGGplus-L2pse'
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/RepVGGplus-L2pse-train256-acc84.06.pth')),
    decode_head=dict(in_channels=2560),
    auxiliary_head=dict(in_channels=640))
