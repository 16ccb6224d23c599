# DualRepVGG-T on Cityscapes: DualRepVGG-S with a 64-channel trunk at 1/8 and detail branch (5.0 GMACs at 512x1024
# instead of 7.5), the same recipe (./dualrepvgg-s_2xb6-120k_cityscapes-1024x1024.py).
#   torchrun --nproc_per_node 2 tools/train.py configs/dualrepvgg/dualrepvgg-t_2xb6-120k_cityscapes-1024x1024.py \
#       --launcher pytorch
_base_ = ['./dualrepvgg-s_2xb6-120k_cityscapes-1024x1024.py']
model = dict(backbone=dict(arch='t'), decode_head=dict(in_channels=64), auxiliary_head=dict(in_channels=64))
