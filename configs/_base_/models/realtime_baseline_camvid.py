# What MMSegmentation's real-time models need to train on CamVid as RepSeg's DualRepVGG does (the CamVid configs of
# DDRNet-23-slim and PIDNet-S add their model): the data, the CPU schedule, MMSegmentation's runtime and preprocessor.
_base_ = ['../datasets/camvid.py', 'mmseg::_base_/default_runtime.py', '../schedules/realtime_2000i_cpu.py']
custom_imports = dict(imports=['repseg'], allow_failed_imports=False)  # CamVidDataset, AtomicCheckpointHook
crop_size = (256, 256)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor', size=crop_size, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255)
