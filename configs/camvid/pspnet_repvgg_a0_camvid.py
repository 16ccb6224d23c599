# PSPNet-RepVGG-A0 on CamVid (11 classes), trained from scratch on a CPU: batch 4, 256x256 crops, test on the whole
# 480x360 image (../_base_/datasets/camvid.py); 500 iterations, SGD lr 0.05 poly (../_base_/schedules/poly_500i_cpu.py).
#
# Reached on CamVid val (101 images), measured 2026-11-22 on a 2-vCPU Intel Xeon (AVX-512 VNNI, AMX; 24 GiB; no GPU)
# with no other job running: mIoU 36.24, mAcc 45.85, aAcc 81.44 (28.09 mIoU after 250 iterations); 2.3 s per iteration,
# 21 min wall for the whole run including two validations. Per class IoU: Sky 89.7, Building 76.3, Road 81.3,
# Tree 75.9, Car 40.6, Pavement 34.9; Pole, SignSymbol, Fence, Pedestrian, Bicyclist 0 (too thin or rare to be learned
# from scratch in 500 CPU iterations). Other runs of this recipe: configs/README.md and docs/quantization.md.
#   ln -s /path/to/camvid data/camvid     # see data/README.md
#   python tools/train.py configs/camvid/pspnet_repvgg_a0_camvid.py --work-dir work_dirs/camvid/pspnet_repvgg_a0_camvid
#   python tools/test.py configs/camvid/pspnet_repvgg_a0_camvid.py work_dirs/camvid/pspnet_repvgg_a0_camvid/iter_500.pth
_base_ = ['../_base_/models/pspnet_repvgg.py', '../_base_/datasets/camvid.py', 'mmseg::_base_/default_runtime.py',
          '../_base_/schedules/poly_500i_cpu.py']
crop_size = (256, 256)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='A0'),
    # heads sized for a CPU as in configs/pspnet_repvgg_a0_sample.py; align_corners=False for even crop sizes
    decode_head=dict(in_channels=1280, channels=128, num_classes=11, align_corners=False),
    auxiliary_head=dict(in_channels=192, channels=64, num_classes=11, align_corners=False),
    test_cfg=dict(mode='whole'))
