# PSPNet with RepVGGplus-L2pse on Cityscapes, 713x713, 7440 iterations at batch 16 (stages 3 and 4 dilated by 2 and 4):
# the paper's recipe for RepVGG-B2 (Table 8) with the official RepVGGplus backbone (post-SE after every block's ReLU).
# ImageNet weights: the official training-time RepVGGplus file; its aux classifiers and `linear` are dropped on load.
# See docs/pretrained.md.
_base_ = ['./_base_/pspnet_repvgg_cityscapes.py']
model = dict(
    backbone=dict(arch='L2pse', fast=False,  # 'L2pse' = 'RepVGGplus-L2pse'
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/RepVGGplus-L2pse-train256-acc84.06.pth')),
    decode_head=dict(in_channels=2560),
    auxiliary_head=dict(in_channels=640))
