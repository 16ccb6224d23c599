# MMSegmentation's PSPNet-R50-D8 under the identical recipe as the RepVGG configs (713x713 crops, 7440 iterations at
# batch 16, lr 0.01, weight decay 1e-4, poly to 0, sliding-window test), for side-by-side comparison (paper Table 8).
# The backbone weights are MMSegmentation's ImageNet ResNet-50-V1c ('open-mmlab://resnet50_v1c', fetched by mmengine).
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/cityscapes_713x713.py',
    '../_base_/schedules/poly_40e_cityscapes.py',
    'mmseg::_base_/default_runtime.py',
]
crop_size = (713, 713)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(align_corners=True),
    auxiliary_head=dict(align_corners=True),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(476, 476)))
