# DualRepVGG-S on CamVid (11 classes) from scratch on a CPU: batch 4, 256x256 crops, whole 480x360 images at test,
# 2000 iterations of the real-time recipe (../_base_/schedules/realtime_2000i_cpu.py), the same data, crops, batch,
# iterations and schedule as ./ddrnet-23-slim_camvid.py and ./pidnet-s_camvid.py. OHEM keeps at least 5461 pixels,
# the share of a batch that DDRNet's Cityscapes config keeps (131072 of 6 x 1024 x 1024).
#   python tools/train.py configs/camvid/dualrepvgg-s_camvid.py --cfg-options randomness.seed=1
_base_ = ['../_base_/models/dualrepvgg.py', '../_base_/datasets/camvid.py', 'mmseg::_base_/default_runtime.py',
          '../_base_/schedules/realtime_2000i_cpu.py']
crop_size = (256, 256)
ohem = dict(min_kept=5461)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='s'),
    decode_head=dict(num_classes=11, sampler=ohem),
    auxiliary_head=dict(num_classes=11, sampler=ohem))
