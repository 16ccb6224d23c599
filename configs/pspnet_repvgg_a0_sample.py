# PSPNet-RepVGG-A0 on the embedded sample dataset (procedural street scenes in the Cityscapes layout), for a CPU.
# `make demo` runs it; the data come from `python tools/make_sample_data.py data/sample`.
# Same model family and recipe shape as the Cityscapes configs (poly LR, SGD, PSP + auxiliary FCN heads), scaled to a
# few CPU minutes: 256x256 crops, batch 4, no ImageNet weights (none can be downloaded here), a higher lr for that.
_base_ = [
    './_base_/models/pspnet_repvgg.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
]
data_root = 'data/sample/'
crop_size = (256, 256)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='A0'),
    # align_corners=False as MMSegmentation does for even crop sizes (the Cityscapes configs use odd 713 crops)
    decode_head=dict(in_channels=1280, channels=128, align_corners=False),
    auxiliary_head=dict(in_channels=192, channels=64, align_corners=False),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked'),
    dict(type='CheckSegLabels', num_classes=19),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked'),
    dict(type='CheckSegLabels', num_classes=19),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=1, persistent_workers=True,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=1, persistent_workers=True,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 400
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
# mmengine's PolyLR decays over end - begin - 1 steps; end=max_iters + 1 gives the paper's lr * (1 - t / max_iters)^0.9
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
