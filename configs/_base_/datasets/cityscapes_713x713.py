# Cityscapes fine (2975 train / 500 val), 713x713 training crops as in the RepVGG paper. Inherits MMSegmentation's
# own Cityscapes settings and replaces the pipelines. Prepare the labels with tools/prepare_cityscapes.py.
_base_ = ['mmseg::_base_/datasets/cityscapes.py']

data_root = 'data/cityscapes/'
crop_size = (713, 713)
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked'),
    dict(type='CheckSegLabels', num_classes=19),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotationsChecked'),
    dict(type='CheckSegLabels', num_classes=19),
    dict(type='PackSegInputs'),
]
# 2 images per GPU x 8 GPUs = the paper's total batch of 16 (see configs/_base_/schedules/poly_40e_cityscapes.py)
train_dataloader = dict(batch_size=2, num_workers=4, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=4, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
