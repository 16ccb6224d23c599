# The first real-time design measured (docs/realtime.md): RepVGG-A0 at output stride 32 (no dilation) with
# MMSegmentation's Semantic FPN (neck and head, 64 channels), on DualRepVGG-S's Cityscapes recipe. Kept to reproduce
# the comparison; DualRepVGG is the recommended design.
_base_ = ['../dualrepvgg/dualrepvgg-s_2xb6-120k_cityscapes-1024x1024.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(_delete_=True, type='RepVGG', arch='A0', out_indices=(1, 2, 3, 4), strides=(2, 2, 2, 2, 2),
                  dilations=(1, 1, 1, 1, 1), norm_cfg=norm_cfg),
    neck=dict(type='FPN', in_channels=[48, 96, 192, 1280], out_channels=64, num_outs=4),
    decode_head=dict(_delete_=True, type='FPNHead', in_channels=[64, 64, 64, 64], in_index=[0, 1, 2, 3],
                     feature_strides=[4, 8, 16, 32], channels=64, dropout_ratio=0.0, num_classes=19, norm_cfg=norm_cfg,
                     align_corners=False, sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=131072),
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                                      class_weight={{_base_.class_weight}})),
    auxiliary_head=None)
