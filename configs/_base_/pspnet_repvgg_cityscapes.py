# The full recipe shared by every configs/pspnet_repvgg_*.py: model + Cityscapes 713x713 + the paper's schedule.
_base_ = [
    './models/pspnet_repvgg.py',
    './datasets/cityscapes_713x713.py',
    './schedules/poly_40e_cityscapes.py',
    'mmseg::_base_/default_runtime.py',
]
crop_size = (713, 713)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # sliding 713x713 windows over the full 2048x1024 image (stride about 2/3 of the window)
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(476, 476)))
