# CamVid, 11 classes, as in the SegNet tutorial (367 train / 101 val / 233 test images at 480x360), read by RepSeg's
# CamVidDataset (repseg/datasets/camvid.py; label 11 = unlabelled becomes 255 = ignored). Layout and how to get it:
# data/README.md. Training: random rescale around the native size, 256x256 crops, flip, photometric distortion;
# testing: the whole native 480x360 image (the model config sets test_cfg mode='whole'). The model config must import
# repseg (custom_imports), as configs/_base_/models/pspnet_repvgg.py does, for the dataset and its transforms.

dataset_type = 'CamVidDataset'
data_root = 'data/camvid/'
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadCamVidAnnotations'),
    dict(type='RandomResize', scale=(480, 360), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadCamVidAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix=dict(img_path='train', seg_map_path='trainannot'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix=dict(img_path='val', seg_map_path='valannot'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
