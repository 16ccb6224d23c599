# PSPNet-RepVGG-A0 on the embedded sample dataset (procedural street scenes in the Cityscapes layout), for a CPU.
# `make demo` runs it; the data come from `python tools/make_sample_data.py --out-dir data/sample`.
# Same model family and recipe shape as the Cityscapes configs (poly LR, SGD, PSP + auxiliary FCN heads), scaled to a
# few CPU minutes: 256x256 crops, batch 4, no ImageNet weights (the demo downloads nothing), a higher lr for that
# (./_base_/schedules/poly_400i_cpu.py: 400 iterations).
_base_ = [
    './_base_/models/pspnet_repvgg.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/poly_400i_cpu.py',
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

# the checked loaders of ./_base_/datasets/cityscapes_713x713.py, scaled to the 512x256 sample images and without the
# test-time resize; spelled out because mmengine replaces an inherited list whole
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
