# MMSegmentation's PIDNet-S (its configs/pidnet/pidnet-s_2xb6-120k_1024x1024-cityscapes.py model) on CamVid from
# scratch: the data, crops, batch, iterations and schedule of ./dualrepvgg-s_camvid.py; its own head and losses, with
# the boundary labels it trains on (GenerateEdge), without the Cityscapes class weights and ImageNet weights.
_base_ = ['../_base_/models/realtime_baseline_camvid.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='PIDNet', in_channels=3, channels=32, ppm_channels=96, num_stem_blocks=2, num_branch_blocks=3,
                  align_corners=False, norm_cfg=norm_cfg, act_cfg=dict(type='ReLU', inplace=True)),
    decode_head=dict(type='PIDHead', in_channels=128, channels=128, num_classes=11, norm_cfg=norm_cfg,
                     act_cfg=dict(type='ReLU', inplace=True), align_corners=True,
                     loss_decode=[dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4),
                                  dict(type='OhemCrossEntropy', thres=0.9, min_kept=5461, loss_weight=1.0),
                                  dict(type='BoundaryLoss', loss_weight=20.0),
                                  dict(type='OhemCrossEntropy', thres=0.9, min_kept=5461, loss_weight=1.0)]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
crop_size = {{_base_.crop_size}}
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadCamVidAnnotations'),
    dict(type='RandomResize', scale=(480, 360), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='GenerateEdge', edge_width=4),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
