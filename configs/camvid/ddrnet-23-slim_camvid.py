# MMSegmentation's DDRNet-23-slim (its configs/ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py
# model) on CamVid from scratch: the data, crops, batch, iterations and schedule of ./dualrepvgg-s_camvid.py; its own
# head and losses (OHEM, main 1.0 + spatial 0.4), without the Cityscapes class weights and ImageNet weights.
_base_ = ['../_base_/models/realtime_baseline_camvid.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='DDRNet', in_channels=3, channels=32, ppm_channels=128, norm_cfg=norm_cfg, align_corners=False),
    decode_head=dict(type='DDRHead', in_channels=32 * 4, channels=64, dropout_ratio=0., num_classes=11,
                     align_corners=False, norm_cfg=norm_cfg,
                     loss_decode=[dict(type='OhemCrossEntropy', thres=0.9, min_kept=5461, loss_weight=1.0),
                                  dict(type='OhemCrossEntropy', thres=0.9, min_kept=5461, loss_weight=0.4)]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
