# MMSegmentation's PSPNet-R101-D8 under the identical recipe (see pspnet_r50-d8_cityscapes_713x713.py).
_base_ = ['./pspnet_r50-d8_cityscapes_713x713.py']
model = dict(pretrained='open-mmlab://resnet101_v1c', backbone=dict(depth=101))
