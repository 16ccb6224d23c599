# MMSegmentation's PSPNet-ResNetV1c-18-D8 on CamVid with the same recipe as pspnet_repvgg_a0_camvid.py (from scratch,
# 500 iterations, batch 4, 256x256 crops, SGD lr 0.05 poly; whole 480x360 image at test), the int8 baseline.
#
# Reached on CamVid val (101 images), measured 2026-11-22 on a 2-vCPU Intel Xeon (AVX-512 VNNI, AMX; 24 GiB; no GPU)
# with no other job running: mIoU 33.03, mAcc 43.59, aAcc 76.95 (23.63 mIoU after 250 iterations); 2.6 s per iteration
# (A0: 2.3 s), 24 min wall for the whole run including two validations. Per class IoU: Sky 88.9, Building 66.8,
# Road 76.0, Tree 69.1, Car 40.9, Pavement 21.7; Pole, SignSymbol, Fence, Pedestrian, Bicyclist 0.
#   python tools/train.py configs/camvid/pspnet_r18-d8_camvid.py --work-dir work_dirs/camvid/pspnet_r18-d8_camvid
#   python tools/test.py configs/camvid/pspnet_r18-d8_camvid.py work_dirs/camvid/pspnet_r18-d8_camvid/iter_500.pth
_base_ = ['mmseg::_base_/models/pspnet_r50-d8.py', '../_base_/datasets/camvid.py', 'mmseg::_base_/default_runtime.py',
          '../_base_/schedules/poly_500i_cpu.py']
custom_imports = dict(imports=['repseg'], allow_failed_imports=False)  # CamVidDataset and its transforms

crop_size = (256, 256)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # from scratch, as the RepVGG model (else EncoderDecoder has the backbone load ResNet-50 weights)
    backbone=dict(depth=18),
    # head sizes of MMSegmentation's own pspnet_r18-d8 configs
    decode_head=dict(in_channels=512, channels=128, num_classes=11),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=11),
    test_cfg=dict(mode='whole'))
