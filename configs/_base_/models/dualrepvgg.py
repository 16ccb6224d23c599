# A DualRepVGG segmentor (repseg/models/backbones/dual_repvgg.py): RepVGG blocks in a detail branch at 1/8 and a
# context branch down to 1/32; MMSegmentation's FCNHead on the fused 1/8 output (decode) and on the detail branch
# after the first dual stage (auxiliary, weight 0.4), both trained on hard pixels as DDRNet's OHEM cross-entropy does
# (MMSegmentation's OHEMPixelSampler: pixels below 0.9 confidence, at least min_kept). Concrete configs set the arch,
# the classes and min_kept for their crop and batch.
custom_imports = dict(imports=['repseg'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                         bgr_to_rgb=True, pad_val=0, seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='DualRepVGG', arch='s', out_indices=(0, 1), norm_cfg=norm_cfg),
    decode_head=dict(type='FCNHead', in_channels=96, in_index=1, channels=64, num_convs=1, kernel_size=3,
                     concat_input=False, dropout_ratio=0.0, num_classes=19, norm_cfg=norm_cfg, align_corners=False,
                     sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=131072),
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(type='FCNHead', in_channels=96, in_index=0, channels=64, num_convs=1, kernel_size=3,
                        concat_input=False, dropout_ratio=0.0, num_classes=19, norm_cfg=norm_cfg, align_corners=False,
                        sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=131072),
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
