# DualRepVGG-M on Cityscapes: DualRepVGG-S's recipe with the medium arch.
_base_ = ['./dualrepvgg-s_2xb6-120k_cityscapes-1024x1024.py']
model = dict(backbone=dict(arch='m'), decode_head=dict(in_channels=128), auxiliary_head=dict(in_channels=128))
