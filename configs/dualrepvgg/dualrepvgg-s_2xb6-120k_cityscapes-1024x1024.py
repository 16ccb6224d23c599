# DualRepVGG-S on Cityscapes, from scratch (no ImageNet weights), with the recipe of MMSegmentation's DDRNet and
# PIDNet configs: 1024x1024 crops, 2 GPUs x 6 images, SGD lr 0.01 momentum 0.9 weight decay 5e-4, poly 0.9 over
# 120k iterations, OHEM cross-entropy with DDRNet's class weights.
#   torchrun --nproc_per_node 2 tools/train.py configs/dualrepvgg/dualrepvgg-s_2xb6-120k_cityscapes-1024x1024.py \
#       --launcher pytorch
_base_ = ['../_base_/models/dualrepvgg.py', 'mmseg::_base_/datasets/cityscapes_1024x1024.py',
          'mmseg::_base_/default_runtime.py', '../_base_/schedules/realtime_2000i_cpu.py']
class_weight = [0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786, 1.0023, 0.9539, 0.9843, 1.1116,
                0.9037, 1.0865, 1.0955, 1.0865, 1.1529, 1.0507]
crop_size = (1024, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='s'),
    decode_head=dict(loss_decode=dict(class_weight=class_weight)),
    auxiliary_head=dict(loss_decode=dict(class_weight=class_weight)))
train_dataloader = dict(batch_size=6, num_workers=4)
# the schedule base's recipe over 120k iterations (values derived from its max_iters are set again)
iters = 120000
param_scheduler = [dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=iters, by_epoch=False)]
train_cfg = dict(max_iters=iters, val_interval=iters // 10)
default_hooks = dict(checkpoint=dict(interval=iters // 10, max_keep_ckpts=-1))
randomness = dict(seed=304)
